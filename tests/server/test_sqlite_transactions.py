"""SQLite transactions as `kit/db.transaction` runs them: statements on the event loop's thread,
writers queued in-process, read-only transactions lock-free, other processes waited for."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.kit.sqlite_driver import THREADED_MANY_ROWS, InlineConnection


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield create_sessionmaker(engine)
    await engine.dispose()


def _path(sessions: async_sessionmaker[AsyncSession]) -> str:
    return str(sessions.kw["bind"].url.database)


async def test_statements_run_on_the_event_loop_thread(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions, read_only=True) as session:
        connection = await session.connection()
        driver = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
        assert isinstance(driver._connection, InlineConnection)  # type: ignore[union-attr]
        assert await session.scalar(text("SELECT n FROM counter")) == 0


async def test_a_many_row_executemany_runs_in_a_thread_and_a_small_one_inline(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A large build's row slices leave the loop free while SQLite writes them."""
    async with transaction(sessions) as session:
        connection = await session.connection()
        driver = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
        raw: sqlite3.Connection = driver._connection._conn  # type: ignore[union-attr]
        raw.create_function("thread_id", 0, threading.get_ident)
        await session.execute(text("CREATE TABLE seen (n INTEGER, thread INTEGER)"))
        insert = text("INSERT INTO seen VALUES (:n, thread_id())")
        many = [{"n": n} for n in range(THREADED_MANY_ROWS)]
        few = [{"n": -n} for n in range(1, THREADED_MANY_ROWS)]
        await session.execute(insert, many)
        await session.execute(insert, few)
        rows = (await session.execute(text("SELECT n, thread FROM seen"))).all()
    loop_thread = threading.get_ident()
    assert sorted(n for n, thread in rows if thread != loop_thread) == list(
        range(THREADED_MANY_ROWS)
    )
    assert sorted(n for n, thread in rows if thread == loop_thread) == sorted(
        -n for n in range(1, THREADED_MANY_ROWS)
    )


async def test_concurrent_writers_take_turns_and_none_is_lost(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def increment() -> None:
        async with transaction(sessions) as session:
            n = await session.scalar(text("SELECT n FROM counter WHERE id = 1"))
            await asyncio.sleep(0)  # let the others try to get in meanwhile
            await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    await asyncio.gather(*(increment() for _ in range(25)))
    async with transaction(sessions, read_only=True) as session:
        assert await session.scalar(text("SELECT n FROM counter")) == 25


async def test_a_read_only_transaction_cannot_write(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(OperationalError, match="readonly"):
        async with transaction(sessions, read_only=True) as session:
            await session.execute(text("UPDATE counter SET n = 7"))
    async with transaction(sessions) as session:  # the same pooled connection writes again
        await session.execute(text("UPDATE counter SET n = 8"))
    async with transaction(sessions, read_only=True) as session:
        assert await session.scalar(text("SELECT n FROM counter")) == 8


async def test_readers_go_on_while_a_writer_holds_the_lock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as writer:
        await writer.execute(text("UPDATE counter SET n = 5"))
        async with transaction(sessions, read_only=True) as reader:
            assert await reader.scalar(text("SELECT n FROM counter")) == 0  # its snapshot
    async with transaction(sessions, read_only=True) as reader:
        assert await reader.scalar(text("SELECT n FROM counter")) == 5


async def test_a_writer_waits_for_another_process_without_blocking_the_loop(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    other = sqlite3.connect(_path(sessions), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE counter SET n = 100")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> None:
        async with transaction(sessions) as session:
            await session.execute(text("UPDATE counter SET n = n + 1"))

    ticker = asyncio.create_task(tick())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.4)
    assert not writing.done()  # still waiting for the other process's lock
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(writing, 5)
    ticker.cancel()
    assert ticks >= 10  # the loop kept running while the writer waited
    async with transaction(sessions, read_only=True) as session:
        assert await session.scalar(text("SELECT n FROM counter")) == 101
