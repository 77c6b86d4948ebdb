"""A whole Kiteline for end-to-end tests: a `kiteline server` process, an organization made
with `kiteline admin`, a REST client, and real `kiteline agent start` processes on demand."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server import admin
from kiteline.server.kit.scopes import SCOPES
from kiteline.settings import Settings
from tests.support.live_server import free_port
from tests.support.processes import kiteline_env, running, server_on, settings_env, wait_until

ORG = "acme"


@dataclass
class Stack:
    url: str
    api_token: str
    agent_token: str
    data_dir: Path
    work_dir: Path
    client: httpx.Client
    _exits: ExitStack
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_url: str = ""
    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    _server_starts: int = 0

    def start_server(self) -> subprocess.Popen[bytes]:
        """A `kiteline server` on the stack's port (again, after `kill(stack.server)`)."""
        self._server_starts += 1
        suffix = "" if self._server_starts == 1 else f"-{self._server_starts}"
        self.server = self._exits.enter_context(
            server_on(
                self.port,
                self.data_dir,
                self.database_url,
                self.work_dir / f"server{suffix}.log",
                **self.settings,
            )
        )
        return self.server

    def start_worker(self) -> subprocess.Popen[bytes]:
        """A `kiteline worker` (run servers with `run_workers="false"` beside it)."""
        env = settings_env(self.data_dir, self.database_url, **self.settings)
        log = self.work_dir / f"worker-{len(list(self.work_dir.glob('worker*.log')))}.log"
        return self._exits.enter_context(running(["worker"], env, log))

    def pipeline(self, name: str, configuration: str, **fields: Any) -> str:
        response = self.client.post(
            f"/v2/organizations/{ORG}/pipelines",
            json={"name": name, "configuration": configuration, **fields},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["slug"])

    def trigger(self, pipeline: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/v2/organizations/{ORG}/pipelines/{pipeline}/builds",
            json={"commit": "HEAD", "branch": "main", **body},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def build(self, pipeline: str, number: int, **params: str) -> dict[str, Any]:
        response = self.client.get(
            f"/v2/organizations/{ORG}/pipelines/{pipeline}/builds/{number}", params=params
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def finished(self, pipeline: str, number: int, timeout: float = 120) -> dict[str, Any]:
        return wait_until(
            lambda: (
                (b := self.build(pipeline, number, include_retried_jobs="true"))["finished_at"]
                and b
            ),
            timeout=timeout,
            what=f"build {pipeline}#{number} to finish",
        )

    def log(self, job: dict[str, Any]) -> str:
        return self.client.get(job["raw_log_url"]).text

    def start_agent(
        self, name: str, *, tags: str = "queue=default", spawn: int = 1, **flags: str
    ) -> subprocess.Popen[bytes]:
        args = [
            "agent",
            "start",
            "--endpoint",
            self.url,
            "--token",
            self.agent_token,
            "--name",
            name,
            "--tags",
            tags,
            "--spawn",
            str(spawn),
            "--build-path",
            str(self.work_dir / "builds" / name),
        ]
        for flag, value in flags.items():
            args += [f"--{flag.replace('_', '-')}", value]
        process = self._exits.enter_context(
            running(args, kiteline_env(self.data_dir), self.work_dir / f"agent-{name}.log")
        )
        self.agents[name] = process
        return process


async def _setup(session: AsyncSession) -> tuple[dict[str, Any], dict[str, Any]]:
    await admin.create_org(session, ORG, "Acme")
    await admin.create_user(session, "dev@acme.test", None, ORG)
    token = await admin.create_token(session, "dev@acme.test", list(SCOPES), "e2e")
    return token, await admin.create_agent_token(session, ORG, "e2e")


@contextmanager
def stack(database_url: str, work_dir: Path, **settings: str) -> Iterator[Stack]:
    data_dir = work_dir / "data"
    # Set up in-process (the `kiteline admin` commands have their own tests): it saves a
    # Python start per command.
    token, agent = asyncio.run(
        admin.run_in_transaction(Settings(data_dir=data_dir, database_url=database_url), _setup)
    )
    with ExitStack() as exits:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        client = exits.enter_context(
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token['token']}"}, timeout=30
            )
        )
        made = Stack(
            url,
            token["token"],
            agent["token"],
            data_dir,
            work_dir,
            client,
            exits,
            database_url=database_url,
            port=port,
            settings=settings,
        )
        made.start_server()
        yield made
