"""Fixtures for the agent tests: a fake Agent API server and an agent pool running against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from kiteline.agent.config import AgentConfig
from kiteline.agent.pool import AgentPool
from kiteline.cli.agent import app as agent_app
from tests.agent.fake_agent_api import REGISTRATION_TOKEN, FakeAgentApi, FakeJob, eventually


@pytest.fixture
def fake_api() -> Iterator[FakeAgentApi]:
    api = FakeAgentApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture
def agent_config(fake_api: FakeAgentApi, tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        endpoint=fake_api.endpoint,
        token=REGISTRATION_TOKEN,
        build_path=tmp_path / "builds",
        name="test-agent",
        cancel_grace_period=1.0,
    )


STOP_TIMEOUT_SECONDS = 20.0


class RunningAgent:
    """An AgentPool running as a task; `stopped()` waits (bounded) for its exit code."""

    def __init__(self, config: AgentConfig) -> None:
        self.pool = AgentPool(config)
        self.task = asyncio.create_task(self.pool.run())

    async def stopped(self, *, force: bool = False) -> int:
        self.pool.stop(force=force)
        return await self.exit_code()

    async def exit_code(self) -> int:
        return await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT_SECONDS)


@pytest.fixture
async def start_agent(agent_config: AgentConfig) -> AsyncIterator[Callable[..., RunningAgent]]:
    """Start agents with `agent_config` plus changes; force-stops whatever is left at the end."""
    started: list[RunningAgent] = []

    def start(**changes: Any) -> RunningAgent:
        agent = RunningAgent(replace(agent_config, **changes))
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.pool.stop(force=True)
    await asyncio.wait_for(asyncio.gather(*(agent.task for agent in started)), 30)


@pytest.fixture
def run_jobs(
    fake_api: FakeAgentApi, start_agent: Callable[..., RunningAgent]
) -> Callable[..., Awaitable[int]]:
    """Run an agent (config changes as keywords) until `jobs` are finished; its exit code."""

    async def run(*jobs: FakeJob, **changes: Any) -> int:
        agent = start_agent(**changes)
        await eventually(lambda: all(job.finish is not None for job in jobs))
        # After its last job the agent pings again; waiting for it makes the record complete.
        await eventually(lambda: fake_api.sequence()[-1:] == ["ping"])
        return await agent.stopped()

    return run


@dataclass
class InJob:
    """`kiteline agent <command>` run in-process as `job` would run it (its env, its token)."""

    api: FakeAgentApi
    job: FakeJob

    @property
    def env(self) -> dict[str, str]:
        return {
            "BUILDKITE_AGENT_ENDPOINT": self.api.endpoint,
            "BUILDKITE_AGENT_ACCESS_TOKEN": self.job.token,
            "BUILDKITE_JOB_ID": self.job.id,
            "BUILDKITE_BUILD_ID": self.job.env["BUILDKITE_BUILD_ID"],
            "BUILDKITE_STEP_ID": self.job.env["BUILDKITE_STEP_ID"],
        }

    @property
    def build_id(self) -> str:
        return self.job.env["BUILDKITE_BUILD_ID"]

    def run(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        """`env` adds variables; None removes one of the job's."""
        return CliRunner().invoke(
            agent_app, list(args), input=input, env={**self.env, **env}, catch_exceptions=False
        )


def write(path: Path, content: str | bytes) -> Path:
    """A file an in-job command reads (an artifact, a pipeline), its folders made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.fixture
def in_job(fake_api: FakeAgentApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InJob:
    """A job the fake API knows but no agent runs, with the test's tmp_path as working dir."""
    monkeypatch.chdir(tmp_path)
    return InJob(fake_api, fake_api.add_job("true"))
