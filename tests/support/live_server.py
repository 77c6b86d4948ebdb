"""A real Kiteline server on a real port, in a thread of the test process (real HTTP)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kiteline.server import admin
from kiteline.server.app import create_app
from kiteline.settings import Settings
from tests.support.run_async import run_async


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Identity:
    """An organization with a member and tokens, made through the admin actions."""

    org: str
    email: str
    api_token: str
    agent_token: str


@dataclass
class LiveServer:
    settings: Settings
    url: str
    _server: uvicorn.Server
    _thread: threading.Thread
    identities: list[Identity] = field(default_factory=list)

    def admin(self, action: Any) -> Any:
        return run_async(lambda: admin.run_in_transaction(self.settings, action))

    def identity(self, org: str, *, scopes: list[str] | None = None) -> Identity:
        email = f"{org}-{len(self.identities)}@example.com"

        async def create(session: Any) -> Identity:
            from kiteline.server.kit.errors import NotFound
            from kiteline.server.kit.scopes import SCOPES
            from kiteline.server.organizations.service import get_by_slug

            try:
                await get_by_slug(session, org)
            except NotFound:
                await admin.create_org(session, org, org.title())
            await admin.create_user(session, email, "Test User", org)
            token = await admin.create_token(session, email, scopes or list(SCOPES), "tests")
            agent = await admin.create_agent_token(session, org, "tests")
            return Identity(org, email, token["token"], agent["token"])

        identity: Identity = self.admin(create)
        self.identities.append(identity)
        return identity

    @property
    def app(self) -> Any:
        """The ASGI app being served; once started, its `state` holds the engine."""
        return self._server.config.app

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def pipeline_with_a_build(
    client: httpx.Client,
    configuration: str,
    *,
    org: str = "acme",
    name: str = "P",
    **build: Any,
) -> None:
    """Pipeline `name` of `org` with `configuration` and its build 1 (HEAD of main, with the
    `build` fields given), through REST as `client`."""
    created = client.post(
        f"/v2/organizations/{org}/pipelines",
        json={"name": name, "configuration": configuration},
    )
    assert created.status_code == 201, created.text
    built = client.post(
        f"/v2/organizations/{org}/pipelines/{created.json()['slug']}/builds",
        json={"commit": "HEAD", "branch": "main", **build},
    )
    assert built.status_code == 201, built.text


def start_live_server(database_url: str, data_dir: Path, **overrides: Any) -> LiveServer:
    port = free_port()
    settings = Settings(
        data_dir=data_dir, database_url=database_url, host="127.0.0.1", port=port, **overrides
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"kiteline-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(settings, f"http://127.0.0.1:{port}", server, thread)


def writer_and_watcher(
    make_server: Callable[..., LiveServer], database_url: str
) -> tuple[LiveServer, LiveServer]:
    """Two replicas of one database: one that changes things, one that a page watches. On
    PostgreSQL NOTIFY carries the wake-up, so the watcher never polls (a poll of 600 s would
    hide a missing one); on SQLite another process's commit can't wake it and its quick poll
    finds the event."""
    writer = make_server()
    on_postgres = database_url.startswith("postgresql")
    return writer, make_server(live_poll_seconds=600 if on_postgres else 0.2)
