"""`kiteline server`: serve the ASGI app with uvicorn; and the listening socket it (and
`kiteline up`) binds before anything else happens."""

from __future__ import annotations

import errno
import socket

import typer

from kiteline.cli.output import fail
from kiteline.settings import Settings

#: How long a stopping server lets requests finish; agents' long polls are cut after it (the
#: agents simply ping again, elsewhere or after the restart).
SHUTDOWN_GRACE_SECONDS = 3


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Server processes sharing the port (PostgreSQL only; the sweeps run in one).",
    ),
) -> None:
    import uvicorn

    from kiteline.server.app import create_app, prepare_serving_process
    from kiteline.server.kit.migrate import upgrade_in_child

    settings = Settings(host=host, port=port)
    if workers > 1:
        refusal = several_processes_refusal(settings.resolved_database_url, workers)
        if refusal:
            raise fail(refusal)
    listener = bind_listener(host, port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_in_child(settings.resolved_database_url)  # first: no loop or thread exists yet
    if workers > 1:
        _serve_in_processes(host, port, log_level, workers, listener)
        return
    app = create_app(settings)
    prepare_serving_process()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[listener])


def several_processes_refusal(database_url: str, workers: int) -> str | None:
    """Why `--workers` can't be used with this database, or None."""
    if database_url.startswith("sqlite"):
        return (
            f"--workers {workers} needs PostgreSQL (KITELINE_DATABASE_URL): SQLite takes one "
            "writer at a time, and Kiteline queues its writers inside one process (decision "
            "0009); processes would instead poll each other's write lock, slower than one. "
            "Serve SQLite with one process, or move to PostgreSQL for several"
        )
    return None


def _serve_in_processes(
    host: str, port: int, log_level: str, workers: int, listener: socket.socket
) -> None:
    """`workers` processes accepting on one socket (uvicorn's supervisor restarts any that
    dies); each builds its own app from the environment."""
    import os

    from uvicorn import Config
    from uvicorn.supervisors import Multiprocess

    os.environ["KITELINE_HOST"], os.environ["KITELINE_PORT"] = host, str(port)
    config = Config(
        "kiteline.server.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        workers=workers,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    Multiprocess(config, sockets=[listener]).run()


def bind_listener(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening before anything is written, so that a taken
    port is one line naming it and `--port`, not a traceback after half a start."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        reason = "is already in use" if error.errno == errno.EADDRINUSE else f"failed: {error}"
        raise fail(
            f"listening on {host}:{port} {reason}: stop what is using it, or pass --port "
            f"with a free port (e.g. --port {port + 1}; `make up PORT={port + 1}`)"
        ) from error
