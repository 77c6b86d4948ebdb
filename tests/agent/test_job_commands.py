"""In-job commands as jobs use them: `buildkite-agent` on PATH, the automatic artifact upload
after the command, and `redactor add` reaching the log's redactor."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kiteline.agent.shims import prepare_shims


def test_the_shim_runs_kiteline_agent_with_the_agents_interpreter(tmp_path: Path) -> None:
    prepare_shims(tmp_path / "bin")

    shim = tmp_path / "bin" / "buildkite-agent"
    assert os.access(shim, os.X_OK)
    assert shim.read_text() == f'#!/bin/sh\nexec {sys.executable} -m kiteline agent "$@"\n'


async def test_a_job_calls_buildkite_agent_from_its_path_with_its_token(fake_api, run_jobs):
    job = fake_api.add_job(
        "buildkite-agent meta-data set greeting hello\n"
        'echo "got $(buildkite-agent meta-data get greeting)"\n'
        'buildkite-agent meta-data exists missing || echo "exists exited $?"',
        token="job-token-in-job",
    )
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert "got hello\n" in job.log()
    assert "exists exited 100\n" in job.log()
    assert {call.authorization for call in fake_api.calls("job_data")} == {"Token job-token-in-job"}


async def test_artifact_paths_are_uploaded_after_the_command(fake_api, run_jobs):
    job = fake_api.add_job(
        "mkdir -p out && echo built > out/app.txt",
        env={"BUILDKITE_ARTIFACT_PATHS": "out/*.txt;missing.log"},
    )
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    [artifact] = fake_api.artifacts.values()
    assert (artifact.path, artifact.content, artifact.state) == (
        "out/app.txt",
        b"built\n",
        "finished",
    )
    log = job.log()
    assert "~~~ Uploading artifacts\n" in log
    assert "Uploading artifact out/app.txt (6 bytes)\n" in log
    order = fake_api.sequence()
    assert order.index("update_artifacts") < order.index("finish")


async def test_artifacts_are_uploaded_even_when_the_command_failed(fake_api, run_jobs):
    job = fake_api.add_job(
        "echo partial > report.txt; exit 3", env={"BUILDKITE_ARTIFACT_PATHS": "report.txt"}
    )
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "3"
    assert [artifact.content for artifact in fake_api.artifacts.values()] == [b"partial\n"]


async def test_a_failed_artifact_upload_fails_a_passing_job(fake_api, run_jobs):
    fake_api.fail_next("create_artifacts", 400)
    job = fake_api.add_job("echo x > a.txt", env={"BUILDKITE_ARTIFACT_PATHS": "a.txt"})
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert (
        "🚨 Error: Uploading artifacts failed: POST jobs/"
        f"{job.id}/artifacts: HTTP 400: injected 400\n^^^ +++\n"
    ) in job.log()


async def test_artifact_paths_matching_nothing_only_warn(fake_api, run_jobs, agent_config):
    job = fake_api.add_job("true", env={"BUILDKITE_ARTIFACT_PATHS": "nothing/*"})
    await run_jobs(job)

    checkout = agent_config.build_path / "test-agent" / "acme" / "widgets"
    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert f"⚠️ Warning: No files matched 'nothing/*' in {checkout}\n^^^ +++\n" in job.log()
    assert fake_api.calls("create_artifacts") == []


async def test_redactor_add_hides_a_value_from_the_rest_of_the_log(fake_api, run_jobs):
    job = fake_api.add_job(
        'value="generated-$((6 * 7))-secret"\n'
        'echo "before: $value"\n'
        'echo "$value" | buildkite-agent redactor add\n'
        'echo "after: $value"',
        # A server cannot point the job's redactor elsewhere.
        env={"BUILDKITE_REDACTOR_FILE": "/tmp/not-the-agents"},
    )
    await run_jobs(job)

    log = job.log()
    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert "before: generated-42-secret\n" in log
    assert "after: [REDACTED]\n" in log
