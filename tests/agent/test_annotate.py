"""`buildkite-agent annotate` and `annotation remove`: the requests they make."""

from __future__ import annotations

from tests.agent.conftest import InJob


def test_annotate_sends_every_option_given(in_job: InJob) -> None:
    result = in_job.run(
        "annotate", "**Deployed** v1.2",
        "--style", "success",
        "--context", "deploy",
        "--append",
        "--priority", "7",
        "--scope", "job",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [call] = in_job.api.calls("annotate")
    assert call.raw_path == f"/v3/jobs/{in_job.job.id}/annotations"
    assert call.authorization == f"Token {in_job.job.token}"
    assert call.json() == {
        "body": "**Deployed** v1.2",
        "style": "success",
        "context": "deploy",
        "append": True,
        "priority": 7,
        "scope": "job",
    }


def test_annotate_reads_the_body_from_stdin_and_leaves_out_empty_options(in_job: InJob) -> None:
    assert in_job.run("annotate", input="# Report\n\nAll good.\n").exit_code == 0

    assert in_job.api.calls("annotate")[0].json() == {
        "body": "# Report\n\nAll good.\n",
        "priority": 3,
        "scope": "build",
    }


def test_annotate_with_only_a_style_changes_the_style(in_job: InJob) -> None:
    assert in_job.run("annotate", "--style", "error", "--context", "tests").exit_code == 0

    assert in_job.api.calls("annotate")[0].json() == {
        "style": "error",
        "context": "tests",
        "priority": 3,
        "scope": "build",
    }


def test_an_unknown_style_is_a_usage_error(in_job: InJob) -> None:
    result = in_job.run("annotate", "body", "--style", "purple")

    assert result.exit_code == 2
    assert in_job.api.calls("annotate") == []


def test_a_priority_outside_1_to_10_is_refused(in_job: InJob) -> None:
    result = in_job.run("annotate", "body", "--priority", "11")

    assert result.exit_code == 1
    assert result.stderr == "error: The priority must be from 1 to 10, got 11\n"
    assert in_job.api.calls("annotate") == []


def test_annotation_remove_deletes_by_context_and_scope(in_job: InJob) -> None:
    result = in_job.run("annotation", "remove", "--context", "release.notes", "--scope", "job")

    assert result.exit_code == 0, result.output
    [call] = in_job.api.calls("unannotate")
    assert call.method == "DELETE"
    # Dots are escaped in path ids, as buildkite-agent does ("Rails-safe").
    assert call.raw_path == f"/v3/jobs/{in_job.job.id}/annotations/release%2Enotes"
    assert call.query == {"scope": "job"}


def test_annotation_remove_defaults_to_the_default_context(in_job: InJob) -> None:
    assert in_job.run("annotation", "remove").exit_code == 0

    [call] = in_job.api.calls("unannotate")
    assert (call.raw_path, call.query) == (
        f"/v3/jobs/{in_job.job.id}/annotations/default",
        {"scope": "build"},
    )
