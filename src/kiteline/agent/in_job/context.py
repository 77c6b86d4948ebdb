"""What every in-job command starts from: the job's environment, and an API client made from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from kiteline.agent.api import AgentApi, Session
from kiteline.agent.job_env import REQUEST_HEADER_PREFIX


class InJobError(Exception):
    """A command that cannot do what was asked; the message says what to change."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class JobEnvironment:
    """The variables the agent exported to the job, read only when a command needs them."""

    values: Mapping[str, str]

    def require(self, name: str, *, flag: str | None = None) -> str:
        value = self.values.get(name, "")
        if value:
            return value
        instead = f", or pass {flag}" if flag else ""
        raise InJobError(f"{name} is not set: run this command inside a job{instead}")

    @property
    def endpoint(self) -> str:
        return self.require("BUILDKITE_AGENT_ENDPOINT")

    @property
    def token(self) -> str:
        return self.require("BUILDKITE_AGENT_ACCESS_TOKEN")

    def job_id(self, override: str | None = None) -> str:
        return override or self.require("BUILDKITE_JOB_ID", flag="--job")

    def build_id(self, override: str | None = None) -> str:
        return override or self.require("BUILDKITE_BUILD_ID", flag="--build")

    def step_id(self, override: str | None = None) -> str:
        return override or self.require("BUILDKITE_STEP_ID", flag="--step")

    def request_headers(self) -> dict[str, str]:
        """`BUILDKITE_REQUEST_HEADER_BUILDKITE_FOO=x` back to `Buildkite-Foo: x`."""
        return {
            "-".join(part.capitalize() for part in name[len(REQUEST_HEADER_PREFIX) :].split("_")): (
                value
            )
            for name, value in self.values.items()
            if name.startswith(REQUEST_HEADER_PREFIX) and len(name) > len(REQUEST_HEADER_PREFIX)
        }


@asynccontextmanager
async def job_api(env: JobEnvironment) -> AsyncIterator[AgentApi]:
    """An Agent API client calling with the job's token and the agent's request headers."""
    endpoint, token = env.endpoint, env.token
    async with httpx.AsyncClient() as http:
        session = Session(endpoint)
        session.update_request_headers(env.request_headers())
        yield AgentApi(http, session, token)
