"""Agent hooks from --hooks-path: run in order, sourced so their exports reach later phases."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def hooks_path(tmp_path: Path) -> Path:
    path = tmp_path / "hooks"
    path.mkdir()
    return path


def write_hook(hooks_path: Path, name: str, script: str) -> None:
    # Not executable on purpose: hooks are sourced, as buildkite-agent does.
    (hooks_path / name).write_text(script)


async def test_environment_hook_exports_reach_the_command(fake_api, run_jobs, hooks_path):
    write_hook(hooks_path, "environment", "export FROM_HOOK=hook-value\nunset GREETING\n")
    job = fake_api.add_job(
        'echo "from hook: $FROM_HOOK, greeting: ${GREETING:-unset}"', env={"GREETING": "hi"}
    )
    await run_jobs(job, hooks_path=hooks_path)

    log = job.log()
    assert f"~~~ Running agent environment hook\n$ {hooks_path / 'environment'}\n" in log
    assert "from hook: hook-value, greeting: unset\n" in log


async def test_hooks_run_in_buildkite_order(fake_api, run_jobs, hooks_path):
    for name in (
        "environment",
        "pre-checkout",
        "post-checkout",
        "pre-command",
        "post-command",
        "pre-exit",
    ):
        write_hook(hooks_path, name, f"echo hook:{name}\n")
    job = fake_api.add_job("echo command")
    await run_jobs(job, hooks_path=hooks_path)

    lines = [line for line in job.log().splitlines() if line.startswith(("hook:", "command"))]
    assert lines == [
        "hook:environment",
        "hook:pre-checkout",
        "hook:post-checkout",
        "hook:pre-command",
        "command",
        "hook:post-command",
        "hook:pre-exit",
    ]
    assert job.finish is not None and job.finish["exit_status"] == "0"


async def test_post_command_sees_the_command_exit_status(fake_api, run_jobs, hooks_path):
    write_hook(hooks_path, "post-command", 'echo "command exited $BUILDKITE_COMMAND_EXIT_STATUS"\n')
    job = fake_api.add_job("exit 7")
    await run_jobs(job, hooks_path=hooks_path)

    assert "~~~ Running agent post-command hook\n" in job.log()
    assert "command exited 7\n" in job.log()
    assert job.finish is not None and job.finish["exit_status"] == "7"


async def test_a_failing_pre_command_hook_skips_the_command(fake_api, run_jobs, hooks_path):
    write_hook(hooks_path, "pre-command", "echo refusing; exit 4\n")
    write_hook(hooks_path, "pre-exit", "echo cleaning up\n")
    job = fake_api.add_job("echo command-ran")
    await run_jobs(job, hooks_path=hooks_path)

    log = job.log()
    assert "🚨 Error: The agent pre-command hook exited with status 4\n" in log
    assert "~~~ Running commands" not in log
    assert "cleaning up\n" in log
    assert job.finish is not None and job.finish["exit_status"] == "4"


async def test_secrets_exported_by_a_hook_are_redacted(fake_api, run_jobs, hooks_path):
    write_hook(hooks_path, "environment", "export DEPLOY_PASSWORD=correct-horse-battery\n")
    job = fake_api.add_job('echo "pw=$DEPLOY_PASSWORD"')
    await run_jobs(job, hooks_path=hooks_path)

    assert "pw=[REDACTED]\n" in job.log()
    assert "correct-horse" not in job.log()


async def test_the_hooks_path_is_exported_to_the_job(fake_api, run_jobs, hooks_path):
    job = fake_api.add_job('echo "hooks=$BUILDKITE_HOOKS_PATH"')
    await run_jobs(job, hooks_path=hooks_path)

    assert f"hooks={hooks_path}\n" in job.log()
