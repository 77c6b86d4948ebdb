"""`kiteline server`: serve the ASGI app with uvicorn."""

from __future__ import annotations

import typer

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

    settings = Settings(host=host, port=port)
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
