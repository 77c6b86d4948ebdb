"""`kiteline db upgrade`: apply the database migrations."""

from __future__ import annotations

import asyncio

import typer

from kiteline.cli.output import console
from kiteline.settings import Settings

app = typer.Typer(rich_markup_mode=None, help="Database maintenance", no_args_is_help=True)


@app.command("upgrade", help="Apply every pending migration to the configured database.")
def upgrade() -> None:
    from kiteline.server.kit.db import create_engine
    from kiteline.server.kit.migrate import upgrade as upgrade_schema

    settings = Settings()

    async def run() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade_schema(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print("database is up to date")
