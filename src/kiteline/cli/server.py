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
) -> None:
    import uvicorn

    from kiteline.server.app import create_app, freeze_startup_heap

    listener = bind_listener(host, port)
    settings = Settings(host=host, port=port)
    app = create_app(settings)
    freeze_startup_heap()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[listener])


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
