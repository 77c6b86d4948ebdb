"""PostgreSQL's pooled connections are pinged only after sitting idle (`kit/db.py`, decision
0047): a connection its server dropped while idle is replaced before a request meets it, and
one in steady use is not pinged at every checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from kiteline.server.kit import db
from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction


async def _backend_pid(sessions: db.async_sessionmaker[db.AsyncSession]) -> int:
    async with transaction(sessions) as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    """From a connection outside the pool (the pool's is idle in it)."""
    import asyncpg

    other = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await other.close()


@pytest.fixture
def postgresql_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool's pings are PostgreSQL's")
    return database_url


async def test_a_connection_dropped_while_idle_is_replaced_before_use(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgresql_url)
    sessions = create_sessionmaker(engine)
    try:
        first = await _backend_pid(sessions)
        await _terminate(postgresql_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout is "idle"
        replaced = await _backend_pid(sessions)
        assert replaced != first
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the idle time a dropped connection is met by the request (which fails once, as
    with any connection lost mid-request), and the pool replaces it for the next."""
    engine = create_engine(postgresql_url)
    sessions = create_sessionmaker(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    try:
        first = await _backend_pid(sessions)
        await _terminate(postgresql_url, first)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(sessions)
        assert failed.value.connection_invalidated
        assert await _backend_pid(sessions) != first
    finally:
        await engine.dispose()
