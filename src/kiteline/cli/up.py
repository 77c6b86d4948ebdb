"""`kiteline up`: first start creates an organization, a user and tokens; every start runs the
server and N agents in one process tree, and Ctrl-C stops them all cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import typer
import uvicorn

from kiteline.cli.credentials import CREDENTIALS_FILE
from kiteline.cli.output import console
from kiteline.cli.server import SHUTDOWN_GRACE_SECONDS, bind_listener
from kiteline.server import admin
from kiteline.server.app import create_app, prepare_serving_process
from kiteline.server.kit.migrate import upgrade_in_child
from kiteline.server.kit.passwords import generate_password
from kiteline.settings import Settings

AGENT_STOP_GRACE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `up` decides the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def load_or_create_credentials(settings: Settings) -> tuple[dict[str, Any], bool]:
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        credentials = json.loads(path.read_text())
        if "password" not in credentials:  # made before the web UI: give the user a password
            credentials["password"] = generate_password()
            asyncio.run(
                admin.run_in_transaction(
                    settings,
                    lambda s: admin.set_password(s, credentials["user"], credentials["password"]),
                )
            )
            _write_credentials(path, credentials)
        return credentials, False
    credentials = asyncio.run(admin.run_in_transaction(settings, admin.first_start))
    _write_credentials(path, credentials)
    return credentials, True


def _write_credentials(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(credentials, indent=2) + "\n")
    path.chmod(0o600)


def _banner(credentials: dict[str, Any], url: str, created: bool, agents: int) -> None:
    org = credentials["organization"]
    console.print(
        f"[bold green]Kiteline is up[/bold green] at {url}"
        + (" (first start: credentials created)" if created else "")
    )
    console.print(f"  Web UI        {url}/   (sign in below)")
    console.print(f"  REST API      {url}/v2   (try {url}/v2/organizations/{org}/pipelines)")
    console.print(f"  Agent API     {url}/v3   ({agents} agent(s) running)")
    console.print(f"  Health        {url}/healthz")
    console.print(f"  API token     {credentials['api_token']}")
    console.print(f"  Agent token   {credentials['agent_token']}")
    console.print(f"  Email         {credentials['user']}")
    console.print(f"  Password      {credentials['password']}")
    console.print(f"  Organization  {org}")
    console.print("Press Ctrl-C to stop.")


def up(
    port: int = typer.Option(8080, help="Port to serve on."),
    agents: int = typer.Option(2, help="How many agents to run (jobs in parallel)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
) -> None:
    listener = bind_listener(host, port)
    settings = Settings(host=host, port=port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_in_child(settings.resolved_database_url)  # first: no loop or thread exists yet
    credentials, created = load_or_create_credentials(settings)
    url = f"http://{host}:{port}"
    _remember_url(settings, credentials, url)
    code = asyncio.run(_run(settings, credentials, url, created, agents, listener))
    raise typer.Exit(code)


def _remember_url(settings: Settings, credentials: dict[str, Any], url: str) -> None:
    """Keep where this start serves in the credentials file, so that the API commands run
    in this folder find the server (the port may change from one start to the next)."""
    if credentials.get("url") == url:
        return
    credentials["url"] = url
    path = settings.data_dir / CREDENTIALS_FILE
    path.write_text(json.dumps(credentials, indent=2) + "\n")


async def _run(
    settings: Settings,
    credentials: dict[str, Any],
    url: str,
    created: bool,
    agents: int,
    listener: socket.socket,
) -> int:
    try:
        server, serving = await start_server(settings, sockets=[listener])
    except ServerDidNotStart:
        return 1
    prepare_serving_process()
    agent_process = (
        await start_agents(
            url,
            credentials["agent_token"],
            count=agents,
            name="kiteline-up-%spawn",
            build_path=settings.data_dir.absolute() / "builds",
        )
        if agents
        else None
    )
    _banner(credentials, url, created, agents)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters: list[asyncio.Future[Any]] = [asyncio.create_task(stop.wait()), serving]
    if agent_process is not None:
        waiters.append(asyncio.create_task(agent_process.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    console.print("stopping…")
    if agent_process is not None:
        await stop_agents(agent_process)
    await stop_server(server, serving)
    return 0


class ServerDidNotStart(Exception):
    """uvicorn returned before it served (it has logged why)."""


async def start_server(
    settings: Settings, *, sockets: list[socket.socket] | None = None
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve the app in this event loop; return once it accepts connections. `sockets`, when
    given, are already bound (so a free port cannot be taken between choosing and binding)."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started:
        if serving.done():
            serving.result()
            raise ServerDidNotStart
        await asyncio.sleep(0.05)
    return server, serving


async def stop_server(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception):
        await serving


async def start_agents(
    url: str,
    token: str,
    *,
    count: int,
    name: str,
    build_path: Path,
    tags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    output: IO[bytes] | None = None,
) -> asyncio.subprocess.Process:
    """`kiteline agent start` with `count` agents, as a child process; `output` receives its
    stdout and stderr (default: this process's)."""
    args = ["--endpoint", url, "--token", token, "--spawn", str(count), "--name", name]
    args += ["--build-path", str(build_path)]
    if tags:
        args += ["--tags", ",".join(tags)]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kiteline",
        "agent",
        "start",
        *args,
        env=dict(os.environ if env is None else env),
        stdout=output,
        stderr=output,
        # Its own session: a terminal Ctrl-C reaches `up` alone, which then stops the agents.
        start_new_session=True,
        preexec_fn=_stop_when_parent_dies if sys.platform == "linux" else None,
    )


def _stop_when_parent_dies() -> None:
    """In the forked child (Linux): SIGTERM when the process that started it dies, even by
    SIGKILL, so that agents never outlive the server they were started for."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def stop_agents(process: asyncio.subprocess.Process) -> None:
    """SIGTERM lets agents finish their jobs; a second one cancels them; then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, AGENT_STOP_GRACE_SECONDS), (signal.SIGTERM, 12.0)):
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
