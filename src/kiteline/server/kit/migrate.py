"""Applies Alembic migrations: on every server start and through `kiteline db upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: PostgreSQL advisory lock taken for the migration's transaction: processes starting at once
#: (`kiteline server --workers N`, replicas) upgrade one after the other, not side by side.
MIGRATION_LOCK_KEY = 0x6B697465_6D6967


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision, inside one transaction where the backend allows."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade)
