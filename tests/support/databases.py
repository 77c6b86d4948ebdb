"""Fresh, throwaway databases for tests: a SQLite file, or a new PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from kiteline.settings import normalize_database_url
from tests.support.run_async import run_async

POSTGRES_URL = os.environ.get("KITELINE_TEST_DATABASE_URL")


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'kiteline.db'}"
        return
    assert POSTGRES_URL, "KITELINE_TEST_DATABASE_URL is not set"
    admin_url = make_url(normalize_database_url(POSTGRES_URL))
    name = f"kiteline_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = admin_url.render_as_string(hide_password=False)
    run_async(lambda: _execute(admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        run_async(lambda: _execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(url: str, statement: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
