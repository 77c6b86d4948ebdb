"""Applies Alembic migrations: on every server start and through `kiteline db upgrade`.

Alembic (with Mako and Pygments behind it) is about 11 MB of a server's memory once imported,
so it is imported only when the database is behind: a start against a schema already at the
newest revision reads one row and leaves Alembic unloaded. `kiteline server` goes further and
applies pending migrations in a forked child before it serves (`upgrade_in_child`), so the
serving process never holds Alembic, not even on its first start.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: PostgreSQL advisory lock taken for the migration's transaction: processes starting at once
#: (`kiteline server --workers N`, replicas) upgrade one after the other, not side by side.
MIGRATION_LOCK_KEY = 0x6B697465_6D6967


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str:
    """The newest revision: each version file is `NNNN_title.py` and its revision is `NNNN`."""
    return max(path.name[:4] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]" * 4 + "_*.py"))


def _at_head(connection: Connection) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return list(versions) == [head_revision()]


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision, inside one transaction where the backend allows."""

    def _upgrade(connection: Connection) -> None:
        if _at_head(connection):
            return
        from alembic import command

        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade)


def upgrade_in_child(database_url: str) -> None:
    """Apply pending migrations in a forked child and wait for it.

    Call it before the process starts an event loop or a thread: a fork copies only the
    calling thread. A child that fails says nothing; the server's own start then upgrades
    in-process and reports the reason as it always has.
    """
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    status = 1
    try:
        asyncio.run(_upgrade_url(database_url))
        status = 0
    except BaseException:  # the parent upgrades again in-process and reports why
        pass
    finally:
        os._exit(status)


async def _upgrade_url(database_url: str) -> None:
    from kiteline.server.kit.db import create_engine

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
