"""`kiteline agent start` as a real process: options, env vars, signals and exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.agent.fake_agent_api import REGISTRATION_TOKEN, FakeAgentApi, eventually
from tests.support.plugins import make_plugin

START = [sys.executable, "-c", "from kiteline.cli.agent import app; app()", "start"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("BUILDKITE")}
    return {**env, "COLUMNS": "200", **extra}  # wide enough that usage errors are not wrapped


async def read_until(stream: asyncio.StreamReader | None, text: str) -> None:
    assert stream is not None
    while True:
        line = await asyncio.wait_for(stream.readline(), 20)
        assert line, f"the agent exited without logging {text!r}"
        if text in line.decode():
            return


@asynccontextmanager
async def agent_process(
    *args: str, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        *START, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_agent_runs_a_job_and_exits_zero_on_sigterm(fake_api: FakeAgentApi, tmp_path: Path):
    job = fake_api.add_job("echo from-the-cli")
    async with agent_process(
        "--endpoint", fake_api.url,
        "--token", REGISTRATION_TOKEN,
        "--name", "cli-agent",
        "--tags", "queue=default,os=linux",
        "--build-path", str(tmp_path / "builds"),
        env=clean_env(),
    ) as process:  # fmt: skip
        await eventually(lambda: job.finish is not None)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)

    assert process.returncode == 0
    assert fake_api.calls("register")[0].json()["meta_data"] == ["queue=default", "os=linux"]
    assert fake_api.sequence()[-1] == "disconnect"
    assert "from-the-cli\n" in job.log()
    assert (tmp_path / "builds" / "cli-agent" / "acme" / "widgets").is_dir()
    messages = stderr.decode()
    assert f"cli-agent accepted job {job.id}" in messages
    assert f"cli-agent finished job {job.id} with exit status 0" in messages


async def test_agent_reads_endpoint_and_token_from_buildkite_env_vars(
    fake_api: FakeAgentApi, tmp_path: Path
):
    env = clean_env(
        BUILDKITE_AGENT_ENDPOINT=fake_api.endpoint,
        BUILDKITE_AGENT_TOKEN=REGISTRATION_TOKEN,
        BUILDKITE_AGENT_NAME="env-agent",
        BUILDKITE_BUILD_PATH=str(tmp_path / "builds"),
    )
    async with agent_process(env=env) as process:
        await eventually(lambda: fake_api.calls("ping"))
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 20)

    assert process.returncode == 0
    assert fake_api.calls("register")[0].json()["name"] == "env-agent"


async def test_a_second_sigterm_cancels_the_running_job(fake_api: FakeAgentApi, tmp_path: Path):
    started = tmp_path / "started"
    job = fake_api.add_job(f"touch {started}; sleep 300")
    async with agent_process(
        "--endpoint", fake_api.url,
        "--token", REGISTRATION_TOKEN,
        "--build-path", str(tmp_path / "builds"),
        env=clean_env(),
    ) as process:  # fmt: skip
        await eventually(started.exists)
        process.send_signal(signal.SIGTERM)
        await read_until(process.stderr, "SIGTERM received: finishing running jobs")
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)

    assert process.returncode == 0
    assert job.finish is not None
    assert (job.finish["signal"], job.finish["signal_reason"]) == ("SIGTERM", "agent_stop")


async def test_a_missing_token_is_a_usage_error(tmp_path: Path):
    async with agent_process("--build-path", str(tmp_path), env=clean_env()) as process:
        _, stderr = await asyncio.wait_for(process.communicate(), 20)

    assert process.returncode == 2
    assert "pass --token or set BUILDKITE_AGENT_TOKEN" in stderr.decode()


async def test_plugin_options_come_from_flags_and_env_vars(fake_api: FakeAgentApi, tmp_path: Path):
    mirror = tmp_path / "mirror"
    make_plugin(mirror / "acme" / "hello-buildkite-plugin", {"pre-command": "echo plugin-hook\n"})
    job = fake_api.add_job(
        'echo "plugins at $BUILDKITE_PLUGINS_PATH, fresh=$BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH"',
        env={"BUILDKITE_PLUGINS": '["acme/hello#v1.0.0"]'},
    )
    plugins_path = tmp_path / "plugins"
    async with agent_process(
        "--endpoint", fake_api.url,
        "--token", REGISTRATION_TOKEN,
        "--name", "cli-agent",
        "--build-path", str(tmp_path / "builds"),
        "--plugins-path", str(plugins_path),
        env=clean_env(
            KITELINE_PLUGINS_BASE_URL=f"file://{mirror}",
            BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH="true",
        ),
    ) as process:  # fmt: skip
        await eventually(lambda: job.finish is not None)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 20)

    assert job.finish is not None and job.finish["exit_status"] == "0", job.log()
    assert "plugin-hook\n" in job.log()
    assert f"plugins at {plugins_path}, fresh=true\n" in job.log()
    assert (plugins_path / "cli-agent" / "github-com-acme-hello-buildkite-plugin-v1-0-0").is_dir()
