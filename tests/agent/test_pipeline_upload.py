"""`buildkite-agent pipeline upload`: where the pipeline comes from, what is sent, and how the
server's answers (201, 202 + polling, 422, 5xx) end the command."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.agent.conftest import InJob, write
from tests.support.hostile import ALIAS_BOMB, ALIAS_BOMB_REFUSAL

PIPELINE = "steps:\n  - command: echo $GREETING\n"


def test_the_default_file_is_interpolated_and_sent_with_a_fresh_uuid(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / ".buildkite" / "pipeline.yml", PIPELINE)

    result = in_job.run("pipeline", "upload", GREETING="hello")

    assert result.exit_code == 0, result.output
    [call] = in_job.api.calls("pipelines")
    assert call.raw_path == f"/v3/jobs/{in_job.job.id}/pipelines"
    assert call.query == {"async": "true"}
    assert call.authorization == f"Token {in_job.job.token}"
    body = call.json()
    assert body == {"uuid": body["uuid"], "pipeline": {"steps": [{"command": "echo hello"}]}}
    assert uuid.UUID(body["uuid"]).version == 4
    assert "Uploaded the pipeline from .buildkite/pipeline.yml" in result.stderr


def test_default_files_are_tried_in_buildkite_agents_order(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "buildkite.yml", "steps: [{command: from-buildkite-yml}]")
    write(tmp_path / ".buildkite" / "pipeline.json", '{"steps": [{"command": "from-json"}]}')

    assert in_job.run("pipeline", "upload").exit_code == 0

    assert in_job.api.calls("pipelines")[0].json()["pipeline"] == {
        "steps": [{"command": "from-json"}]
    }


def test_a_named_file_is_sent_with_replace_when_asked(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "ci" / "deploy.yml", "steps: [{command: deploy}]")

    assert in_job.run("pipeline", "upload", "ci/deploy.yml", "--replace").exit_code == 0

    body = in_job.api.calls("pipelines")[0].json()
    assert body["replace"] is True
    assert body["pipeline"] == {"steps": [{"command": "deploy"}]}


def test_dash_reads_the_pipeline_from_stdin(in_job: InJob) -> None:
    result = in_job.run("pipeline", "upload", "-", input="steps: [{command: piped}]\n")

    assert result.exit_code == 0, result.output
    assert in_job.api.calls("pipelines")[0].json()["pipeline"] == {"steps": [{"command": "piped"}]}


def test_piped_stdin_wins_over_the_default_files(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / ".buildkite" / "pipeline.yml", "steps: [{command: from-file}]")

    assert in_job.run("pipeline", "upload", input="steps: [{command: piped}]").exit_code == 0

    assert in_job.api.calls("pipelines")[0].json()["pipeline"] == {"steps": [{"command": "piped"}]}


def test_empty_stdin_falls_back_to_the_default_files(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / ".buildkite" / "pipeline.yml", "steps: [{command: from-file}]")

    assert in_job.run("pipeline", "upload", input=" \n").exit_code == 0

    assert in_job.api.calls("pipelines")[0].json()["pipeline"] == {
        "steps": [{"command": "from-file"}]
    }


def test_no_interpolation_sends_variables_as_written(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)

    assert in_job.run("pipeline", "upload", "p.yml", "--no-interpolation").exit_code == 0

    assert in_job.api.calls("pipelines")[0].json()["pipeline"] == {
        "steps": [{"command": "echo $GREETING"}]
    }


def test_dry_run_prints_the_document_and_sends_nothing(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)

    result = in_job.run("pipeline", "upload", "p.yml", "--dry-run", GREETING="hi")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"steps": [{"command": "echo hi"}]}
    assert in_job.api.calls("pipelines") == []


def test_an_invalid_pipeline_is_reported_by_step_and_key_and_not_sent(
    in_job: InJob, tmp_path: Path
) -> None:
    write(
        tmp_path / "p.yml",
        "steps:\n  - key: build\n    command: make\n    timeout_in_minutes: soon\n",
    )

    result = in_job.run("pipeline", "upload", "p.yml")

    assert result.exit_code == 1
    assert result.stderr == (
        "error: The pipeline in p.yml is invalid:\n"
        '  Step 1 ("build"): timeout_in_minutes must be a positive integer\n'
    )
    assert in_job.api.calls("pipelines") == []


def test_a_missing_file_is_an_error(in_job: InJob) -> None:
    result = in_job.run("pipeline", "upload", "nope.yml")

    assert result.exit_code == 1
    assert "error: Could not read the pipeline file nope.yml: No such file or directory" in (
        result.stderr
    )


def test_no_pipeline_anywhere_names_the_files_tried(in_job: InJob) -> None:
    result = in_job.run("pipeline", "upload")

    assert result.exit_code == 1
    assert "No pipeline to upload" in result.stderr
    assert ".buildkite/pipeline.yml, .buildkite/pipeline.yaml" in result.stderr


def test_a_rejection_prints_the_servers_reasons(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)
    in_job.api.pipeline_rejection = 'Step key "build" is already used in this build'

    result = in_job.run("pipeline", "upload", "p.yml")

    assert result.exit_code == 1
    assert result.stderr == (
        "error: The server refused the pipeline: Validation Failed: "
        'configuration: Step key "build" is already used in this build\n'
    )
    assert len(in_job.api.calls("pipelines")) == 1  # a 422 is not retried


def test_a_retried_500_sends_the_same_uuid_again(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)
    in_job.api.fail_next("pipelines", 500)

    assert in_job.run("pipeline", "upload", "p.yml").exit_code == 0

    first, second = in_job.api.calls("pipelines")
    assert first.json() == second.json()
    assert [
        first.headers["x-buildkite-backoff-sequence"],
        second.headers["x-buildkite-backoff-sequence"],
    ] == ["0", "1"]
    assert list(in_job.api.pipeline_uploads) == [first.json()["uuid"]]


def test_an_accepted_202_upload_is_polled_until_applied(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)
    in_job.api.async_pipeline_uploads = True

    result = in_job.run("pipeline", "upload", "p.yml")

    assert result.exit_code == 0, result.output
    upload_id = in_job.api.calls("pipelines")[0].json()["uuid"]
    polls = in_job.api.calls("pipeline_status")
    assert [poll.raw_path for poll in polls] == [
        f"/v3/jobs/{in_job.job.id}/pipelines/{upload_id}"
    ] * 2


def test_an_accepted_upload_that_fails_later_prints_the_servers_message(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "p.yml", PIPELINE)
    in_job.api.async_pipeline_uploads = True
    in_job.api.async_pipeline_final_state = "rejected"

    result = in_job.run("pipeline", "upload", "p.yml")

    assert result.exit_code == 1
    assert "The server did not apply the pipeline (rejected): as configured" in result.stderr


def test_without_the_jobs_environment_it_says_what_is_missing(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "p.yml", PIPELINE)

    result = in_job.run("pipeline", "upload", "p.yml", BUILDKITE_AGENT_ACCESS_TOKEN=None)

    assert result.exit_code == 1
    assert result.stderr == (
        "error: BUILDKITE_AGENT_ACCESS_TOKEN is not set: run this command inside a job\n"
    )


def test_request_headers_from_the_agent_are_sent_back(in_job: InJob, tmp_path: Path) -> None:
    write(tmp_path / "p.yml", PIPELINE)

    result = in_job.run(
        "pipeline", "upload", "p.yml", BUILDKITE_REQUEST_HEADER_BUILDKITE_ROUTE_HINT="blue"
    )

    assert result.exit_code == 0
    assert in_job.api.calls("pipelines")[0].headers["buildkite-route-hint"] == "blue"


def test_a_yaml_alias_bomb_is_refused_before_anything_is_sent(
    in_job: InJob, tmp_path: Path
) -> None:
    write(tmp_path / "p.yml", ALIAS_BOMB)

    result = in_job.run("pipeline", "upload", "p.yml")

    assert result.exit_code == 1
    assert result.stderr == (f"error: The pipeline in p.yml is invalid:\n  {ALIAS_BOMB_REFUSAL}\n")
    assert in_job.api.calls("pipelines") == []
