"""`buildkite-agent meta-data set|get|exists|keys`: requests, printed values and exit codes."""

from __future__ import annotations

import uuid

from tests.agent.conftest import InJob


def test_set_posts_the_key_and_value_for_the_job(in_job: InJob) -> None:
    result = in_job.run("meta-data", "set", "release", "v1.2")

    assert result.exit_code == 0, result.output
    [call] = in_job.api.calls("job_data")
    assert (call.method, call.raw_path) == ("POST", f"/v3/jobs/{in_job.job.id}/data/set")
    assert call.json() == {"key": "release", "value": "v1.2"}
    assert call.authorization == f"Token {in_job.job.token}"
    assert in_job.api.meta_data[in_job.build_id] == {"release": "v1.2"}


def test_set_reads_the_value_from_stdin_when_not_given(in_job: InJob) -> None:
    assert in_job.run("meta-data", "set", "notes", input="line one\nline two\n").exit_code == 0

    assert in_job.api.calls("job_data")[0].json() == {
        "key": "notes",
        "value": "line one\nline two\n",
    }


def test_set_refuses_a_blank_value_without_calling_the_server(in_job: InJob) -> None:
    result = in_job.run("meta-data", "set", "release", "  ")

    assert result.exit_code == 1
    assert result.stderr == "error: The value for 'release' cannot be empty or only whitespace\n"
    assert in_job.api.calls("job_data") == []


def test_get_prints_the_value_exactly(in_job: InJob) -> None:
    in_job.api.meta_data[in_job.build_id] = {"release": "v1.2"}

    result = in_job.run("meta-data", "get", "release")

    assert (result.exit_code, result.stdout) == (0, "v1.2")
    assert in_job.api.calls("job_data")[0].json() == {"key": "release"}


def test_get_of_an_unset_key_prints_the_default(in_job: InJob) -> None:
    result = in_job.run("meta-data", "get", "release", "--default", "none-yet")

    assert (result.exit_code, result.stdout) == (0, "none-yet")


def test_get_of_an_unset_key_without_default_fails(in_job: InJob) -> None:
    result = in_job.run("meta-data", "get", "release")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: No meta-data value for 'release' (pass --default to allow that)\n"
    )


def test_exists_exits_0_when_set_and_100_when_not(in_job: InJob) -> None:
    in_job.api.meta_data[in_job.build_id] = {"release": "v1.2"}

    assert in_job.run("meta-data", "exists", "release").exit_code == 0
    assert in_job.run("meta-data", "exists", "other").exit_code == 100
    assert [call.json() for call in in_job.api.calls("job_data")] == [
        {"key": "release"},
        {"key": "other"},
    ]


def test_keys_prints_one_per_line(in_job: InJob) -> None:
    in_job.api.meta_data[in_job.build_id] = {"b": "2", "a": "1"}

    result = in_job.run("meta-data", "keys")

    assert (result.exit_code, result.stdout) == (0, "a\nb\n")
    [call] = in_job.api.calls("job_data")
    assert (call.raw_path, call.body) == (f"/v3/jobs/{in_job.job.id}/data/keys", b"")


def test_build_reads_another_builds_meta_data(in_job: InJob) -> None:
    other_build = str(uuid.uuid4())
    in_job.api.meta_data[other_build] = {"release": "old"}

    result = in_job.run("meta-data", "get", "release", "--build", other_build)

    assert (result.exit_code, result.stdout) == (0, "old")
    assert in_job.api.calls("build_data")[0].raw_path == f"/v3/builds/{other_build}/data/get"


def test_the_build_can_come_from_buildkite_metadata_build_id(in_job: InJob) -> None:
    other_build = str(uuid.uuid4())

    result = in_job.run("meta-data", "exists", "x", BUILDKITE_METADATA_BUILD_ID=other_build)

    assert result.exit_code == 100
    assert in_job.api.calls("build_data")[0].raw_path == f"/v3/builds/{other_build}/data/exists"


def test_job_sets_meta_data_through_another_job(in_job: InJob) -> None:
    other = in_job.api.add_job("true", token=in_job.job.token)

    assert in_job.run("meta-data", "set", "k", "v", "--job", other.id).exit_code == 0

    assert in_job.api.calls("job_data")[0].raw_path == f"/v3/jobs/{other.id}/data/set"


def test_without_a_job_id_it_says_how_to_give_one(in_job: InJob) -> None:
    result = in_job.run("meta-data", "keys", BUILDKITE_JOB_ID=None)

    assert result.exit_code == 1
    assert result.stderr == (
        "error: BUILDKITE_JOB_ID is not set: run this command inside a job, or pass --job\n"
    )
