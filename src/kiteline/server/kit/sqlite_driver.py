"""aiosqlite's connection API, with every call run on the event loop's own thread.

aiosqlite gives each connection a thread and hands every call to it through a queue, then
back through the event loop: two thread switches and a loop turn per statement. SQLite
statements take microseconds, so those hand-offs were most of a write transaction's time
(about 2.5 ms a statement on a busy 2-core machine, with the write lock held throughout).
Running them inline keeps SQLAlchemy's asyncio API and costs the loop only the statement.

Waiting for a lock must not block the loop, so connections get a short busy timeout and
`BEGIN IMMEDIATE` retries with asyncio sleeps (see `kit/db._begin_sqlite`); in one process
writers already take turns on an asyncio lock, so this only meets other processes.

A call run inline completes at once, so awaiting it never lets the loop run other tasks: a
transaction of many statements (a build of 20,000 jobs written 250 at a time) would hold the
loop from its first statement to its last. So after each call the caller yields once the loop
has been held for `kit/slices.SLICE_SECONDS`, as a network driver's every statement does.

Some calls run in a thread instead, the caller's transaction holding the connection until they
return (sqlite3 lets go of the GIL while SQLite works, and the loop goes on): a large commit,
an `executemany` of many rows, and a statement run and fetched whole by a task inside
`fetched_in_thread()` (a large build's job rows).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

from kiteline.server.kit.slices import pause_if_due

# How long one statement may block the loop waiting for another process's lock.
BUSY_TIMEOUT_MS = 50
#: A transaction that wrote this many rows or more commits in a thread: SQLite writes its
#: pages to the WAL then (about 0.1 s of CPU for a build of 20,000 jobs), and sqlite3 lets
#: go of the GIL meanwhile, so the loop goes on.
LARGE_COMMIT_ROWS = 5000
#: An `executemany` of this many rows or more runs in a thread (see `InlineConnection`).
THREADED_MANY_ROWS = 20


def _many(rows: object) -> bool:
    return isinstance(rows, list | tuple) and len(rows) >= THREADED_MANY_ROWS


_fetching_in_thread: ContextVar[bool] = ContextVar("fetching_in_thread", default=False)


@contextmanager
def fetched_in_thread() -> Iterator[None]:
    """Statements this task executes meanwhile are run, and their rows fetched, in a thread:
    for a statement read whole (not streamed) whose rows are many, each one a Python tuple
    made while SQLite steps through them (a large build's 20,000 job rows: tens of
    milliseconds of the loop in one call, inline)."""
    token = _fetching_in_thread.set(True)
    try:
        yield
    finally:
        _fetching_in_thread.reset(token)


def _in_thread(name: str, args: tuple[Any, ...]) -> bool:
    if name == "executemany":
        return _many(args[1] if len(args) > 1 else None)
    return name in ("execute", "fetchall") and _fetching_in_thread.get()


class _RunNow:
    """Stands in for aiosqlite's queue to its thread: runs each call as it is queued."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:  # handed to the awaiting caller, as aiosqlite does
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunNow()  # type: ignore[assignment]
        self._changes_at_end = 0  # total_changes when the last transaction ended

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _in_thread(getattr(fn, "__name__", ""), args):
            # A slice of a large build's rows written (SQLite's work for them is about a fifth
            # of a millisecond per row, and sqlite3 lets go of the GIL for it), or a large
            # build's rows read. The caller's transaction holds the connection until this
            # returns (as for a large commit).
            result = await asyncio.to_thread(fn, *args, **kwargs)
        else:
            result = await super()._execute(fn, *args, **kwargs)
        await pause_if_due()
        return result

    async def commit(self) -> None:
        connection = self._conn
        if connection.total_changes - self._changes_at_end >= LARGE_COMMIT_ROWS:
            # Its transaction holds the connection (and the write queue) until this returns:
            # no other call uses it meanwhile.
            await asyncio.to_thread(connection.commit)
        else:
            await super().commit()
        self._changes_at_end = connection.total_changes

    async def rollback(self) -> None:
        await super().rollback()
        self._changes_at_end = self._conn.total_changes

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no thread to start

    def stop(self) -> asyncio.Future[Any] | None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return None


def inline_creator(url: str) -> Callable[[], InlineConnection]:
    """`async_creator` for `create_async_engine`: connections as SQLAlchemy would open them."""
    args, given = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    (database,) = args
    options: dict[str, Any] = {
        **given,
        "timeout": BUSY_TIMEOUT_MS / 1000,
        "check_same_thread": False,
        "isolation_level": None,  # transactions are begun by kit/db, not by the driver
    }

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **options)

    def create() -> InlineConnection:
        return InlineConnection(connector)

    return create
