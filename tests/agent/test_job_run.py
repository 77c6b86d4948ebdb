"""What a job's command sees and what its log looks like once uploaded."""

from __future__ import annotations

import itertools
import os
from pathlib import Path


async def test_log_shows_the_command_header_prompt_and_output(fake_api, run_jobs):
    job = fake_api.add_job("echo out; echo err >&2")
    await run_jobs(job)

    assert "~~~ Running commands\n$ echo out; echo err >&2\nout\nerr\n" in job.log()


async def test_a_failing_command_is_reported_in_the_log(fake_api, run_jobs):
    job = fake_api.add_job("false")
    await run_jobs(job)

    assert "🚨 Error: The command exited with status 1\n^^^ +++\n" in job.log()
    assert job.finish is not None and job.finish["exit_status"] == "1"


async def test_commands_run_with_bash_errexit(fake_api, run_jobs):
    job = fake_api.add_job("false\necho reached-$((1 + 1))")
    await run_jobs(job)

    assert "reached-2" not in job.log()
    assert job.finish is not None and job.finish["exit_status"] == "1"


async def test_command_sees_server_env_and_agent_set_variables(
    fake_api, run_jobs, agent_config, tmp_path: Path
):
    dump = tmp_path / "env.txt"
    job = fake_api.add_job(
        f"env > {dump}; pwd",
        env={
            "GREETING": "hello",
            "BUILDKITE_AGENT_TOKEN": "must-not-leak",
            "BUILDKITE_BUILD_PATH": "/server/says",
        },
        token="job-token-abc",
    )
    await run_jobs(job)

    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    build_path = agent_config.build_path
    checkout = build_path / "test-agent" / "acme" / "widgets"
    assert env["GREETING"] == "hello"
    assert env["BUILDKITE_JOB_ID"] == job.id
    assert env["BUILDKITE_AGENT_ACCESS_TOKEN"] == "job-token-abc"
    assert env["BUILDKITE_AGENT_ENDPOINT"] == fake_api.endpoint
    assert env["BUILDKITE_AGENT_PID"] == str(os.getpid())
    assert env["BUILDKITE_BUILD_PATH"] == str(build_path)
    assert env["BUILDKITE_BUILD_CHECKOUT_PATH"] == str(checkout)
    assert env["BUILDKITE_BIN_PATH"] == str(build_path / ".bin")
    assert env["PATH"].split(os.pathsep)[0] == str(build_path / ".bin")
    assert env["BUILDKITE_SHELL"] == "/bin/bash -e -c"
    assert env["BUILDKITE_IGNORED_ENV"] == "BUILDKITE_BUILD_PATH"
    assert env["HOME"] == os.environ["HOME"]
    assert "BUILDKITE_AGENT_TOKEN" not in env
    assert "BUILDKITE_HOOKS_PATH" not in env
    assert f"$ env > {dump}; pwd\n{checkout}\n" in job.log()


async def test_secret_env_values_are_redacted_from_the_log(fake_api, run_jobs):
    job = fake_api.add_job(
        'echo "secret: $MY_SECRET"; echo "short: $SHORT_TOKEN"; echo "plain: $GREETING"',
        env={"MY_SECRET": "hunter2-and-more", "SHORT_TOKEN": "abc", "GREETING": "visible-value"},
    )
    await run_jobs(job)

    log = job.log()
    assert "secret: [REDACTED]\n" in log
    assert "hunter2-and-more" not in log
    assert "short: abc\n" in log
    assert "plain: visible-value\n" in log


async def test_the_job_token_is_redacted_from_the_log(fake_api, run_jobs):
    job = fake_api.add_job('echo "token=$BUILDKITE_AGENT_ACCESS_TOKEN"', token="job-token-secret")
    await run_jobs(job)

    assert "token=[REDACTED]\n" in job.log()


async def test_long_output_is_uploaded_in_numbered_chunks_no_larger_than_the_maximum(
    fake_api, run_jobs
):
    job = fake_api.add_job(
        "for i in $(seq 1 200); do echo line-$i; done", chunks_max_size_bytes=256
    )
    await run_jobs(job)

    sequences = sorted(chunk.sequence for chunk in job.chunks)
    assert sequences == list(range(1, len(job.chunks) + 1))
    assert len(job.chunks) > 5
    assert all(chunk.size == len(chunk.data) <= 256 for chunk in job.chunks)
    placed = sorted((chunk.offset, chunk.size) for chunk in job.chunks)
    assert all(
        offset + size == next_offset
        for (offset, size), (next_offset, _) in itertools.pairwise(placed)
    )
    assert "".join(f"line-{i}\n" for i in range(1, 201)) in job.log()


async def test_a_rejected_chunk_is_counted_in_chunks_failed_count(fake_api, run_jobs):
    fake_api.fail_next("chunks", 400)
    job = fake_api.add_job("echo some output")
    await run_jobs(job)

    assert job.finish is not None
    assert job.finish["chunks_failed_count"] == 1
    assert job.finish["exit_status"] == "0"


async def test_a_shell_that_cannot_start_finishes_with_minus_one(fake_api, run_jobs):
    job = fake_api.add_job("echo hi")
    await run_jobs(job, shell="/no/such/shell -c")

    assert job.finish is not None
    assert (job.finish["exit_status"], job.finish["signal_reason"]) == ("-1", "process_run_error")
    assert (
        "🚨 Error: The agent could not run this job: could not start '/no/such/shell'"
    ) in job.log()


async def test_a_job_without_pipeline_slug_fails_with_a_clear_message(fake_api, run_jobs):
    job = fake_api.add_job("echo hi", env={"BUILDKITE_PIPELINE_SLUG": ""})
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "-1"
    assert "the job's env is missing BUILDKITE_PIPELINE_SLUG" in job.log()
