"""`buildkite-agent step get`: an attribute of a step, read through `steps/{step}/export`."""

from __future__ import annotations

from tests.agent.conftest import InJob


def test_step_get_prints_the_attribute_of_the_named_step(in_job: InJob) -> None:
    in_job.api.step_exports[("tests", "outcome")] = "passed"

    result = in_job.run("step", "get", "outcome", "--step", "tests")

    assert (result.exit_code, result.stdout) == (0, "passed\n")
    [call] = in_job.api.calls("step_export")
    assert call.raw_path == "/v3/steps/tests/export"
    assert call.json() == {"attribute": "outcome", "build_id": in_job.build_id}
    assert call.authorization == f"Token {in_job.job.token}"


def test_step_get_defaults_to_the_jobs_own_step_and_passes_the_format(in_job: InJob) -> None:
    step_id = in_job.job.env["BUILDKITE_STEP_ID"]
    in_job.api.step_exports[(step_id, "label")] = '"Build"'

    result = in_job.run("step", "get", "label", "--format", "json")

    assert (result.exit_code, result.stdout) == (0, '"Build"\n')
    assert in_job.api.calls("step_export")[0].json() == {
        "attribute": "label",
        "build_id": in_job.build_id,
        "format": "json",
    }


def test_step_get_of_an_unknown_step_fails_with_the_servers_message(in_job: InJob) -> None:
    result = in_job.run("step", "get", "outcome", "--step", "nope")

    assert result.exit_code == 1
    assert result.stderr == "error: POST steps/nope/export: HTTP 404: No step found\n"
