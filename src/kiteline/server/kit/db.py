"""Database engine, sessions, the declarative base and the column types every domain shares."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import DateTime, MetaData, bindparam, event, select
from sqlalchemy.engine import CursorResult, Dialect, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.sqlite_driver import BUSY_TIMEOUT_MS, inline_creator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, async_creator=inline_creator(url))
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20)
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection that sat unused longer than this is pinged before it is
#: handed out, and replaced if the ping fails (the server restarted, a proxy dropped it).
#: SQLAlchemy's `pool_pre_ping` pings at every checkout: on asyncpg that is `BEGIN`, `;` and
#: `ROLLBACK`, three round trips and about 0.2 ms of Python per transaction, paid by every
#: request. A connection in use more often than this is as alive as a ping would find it.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "kiteline_idle_since"


def _ping_when_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def rested(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out another (a new one if need be).
            raise DisconnectionError(f"connection failed its ping: {error}") from error

    event.listen(pool, "connect", rested)  # new: alive, no ping needed
    event.listen(pool, "checkin", rested)
    event.listen(pool, "checkout", checkout)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" event decides how
    # transactions start (BEGIN IMMEDIATE: one writer at a time, no upgrade deadlocks).
    if dbapi_connection.isolation_level is not None:
        dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


READ_ONLY = "kiteline_read_only"
# How long a writer waits for another process's SQLite write lock before giving up.
LOCK_WAIT_SECONDS = 30.0


def _begin_sqlite(connection: Any) -> None:
    """Writers begin IMMEDIATE (they queue for SQLite's one write lock up front, so no
    transaction fails half-way upgrading); read-only transactions begin DEFERRED and take no
    lock at all, reading their WAL snapshot while writers go on. `query_only` makes a write
    attempted in a read-only transaction fail at once instead of only under contention."""
    read_only = bool(connection.get_execution_options().get(READ_ONLY))
    state = connection.connection.info
    if state.get("query_only", False) != read_only:
        connection.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
        state["query_only"] = read_only
    if read_only:
        connection.exec_driver_sql("BEGIN")
        return
    # Another process holds the write lock: wait for it without blocking the event loop.
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    pause = 0.002
    polling = False
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                if "locked" not in str(error.orig) or time.monotonic() >= deadline:
                    raise
            if not polling:
                # Further tries don't wait in SQLite's busy handler: that wait blocks the
                # loop (50 ms a try, for every writer polling behind a long transaction).
                connection.exec_driver_sql("PRAGMA busy_timeout=0")
                polling = True
            if in_greenlet():  # SQLAlchemy's asyncio API: wait without blocking the loop
                await_(asyncio.sleep(pause))
            else:
                time.sleep(pause)
            pause = min(pause * 2, 0.05)
    finally:
        if polling:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """The engine's URL as plain asyncpg takes it (for connections outside the pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def execute_core(
    session: AsyncSession, statement: Executable, parameters: dict[str, Any]
) -> CursorResult[Any]:
    """A Core statement on the session's connection, without the ORM's work per statement
    (about 90 us of 200 for a small select). That work includes the autoflush, so changes
    pending in the session are not written first: only for statements they cannot affect
    (the agent API's first lookups, rows the session has not loaded)."""
    connection = await session.connection()
    return await connection.execute(statement, parameters)


Row = TypeVar("Row", bound=Base)


async def get_or_not_found(
    session: AsyncSession, model: type[Row], primary_key: uuid.UUID, thing: str
) -> Row:
    """The `model` row with this primary key, or Buildkite's 404 "No <thing> found"."""
    row = await session.get(model, primary_key)
    if row is None:
        raise NotFound.of(thing)
    return row


class Named(NamedTuple):
    """A row as a page names and links it: its id and its name (a name that never changes)."""

    id: uuid.UUID
    name: str


class NamesById:
    """`await names(session, ids)`: the `Named` of each row with one of these ids, in one light
    statement built once (loading whole rows costs more)."""

    def __init__(
        self, id_column: InstrumentedAttribute[uuid.UUID], name: InstrumentedAttribute[str]
    ) -> None:
        self._statement = select(id_column, name).where(
            id_column.in_(bindparam("ids", expanding=True))
        )

    async def __call__(self, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Named]:
        if not ids:
            return {}
        rows = await execute_core(session, self._statement, {"ids": list(ids)})
        pairs = cast("list[tuple[uuid.UUID, str]]", rows.all())
        return {row_id: Named(row_id, name) for row_id, name in pairs}


AfterCommit = Callable[[], None]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the surrounding transaction commits; dropped on rollback."""
    session.sync_session.info.setdefault("after_commit", []).append(callback)


def after_commit_once(session: AsyncSession, callback: AfterCommit) -> None:
    """`after_commit`, unless this transaction already has `callback` (equal bound methods count
    as one)."""
    if callback not in session.sync_session.info.get("after_commit", []):
        after_commit(session, callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop("after_commit", None)


# SQLite's busy handler polls for a contended lock with sleeps of up to 100 ms, so writers of
# one process queue on an asyncio lock instead and are let in the moment the previous one ends.
# Another process (a second server, the CLI) still meets SQLite's own locking, and so does a
# writer that waited this long in the queue (it then goes on to SQLite's lock, which decides).
WRITER_QUEUE_TIMEOUT_SECONDS = 30.0
_writer_locks: weakref.WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]]
_writer_locks = weakref.WeakKeyDictionary()
_holding_writer_lock: ContextVar[bool] = ContextVar("holding_writer_lock", default=False)


def _writer_lock(sessions: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return None
    if _holding_writer_lock.get():
        return None  # a transaction opened inside another one: SQLite's locking decides
    loop = asyncio.get_running_loop()
    held = _writer_locks.get(bind.sync_engine)
    if held is None or held[0] is not loop:
        held = _writer_locks[bind.sync_engine] = (loop, asyncio.Lock())
    return held[1]


def writers_busy(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether a writer transaction begun now would wait in this process's SQLite writer
    queue (never on PostgreSQL, whose writers don't wait for each other's tables)."""
    lock = _writer_lock(sessions)
    return lock is not None and lock.locked()


@asynccontextmanager
async def _queued_writer(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    acquired = False
    if lock is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WRITER_QUEUE_TIMEOUT_SECONDS):
                acquired = await lock.acquire()
    token = _holding_writer_lock.set(True) if acquired else None
    try:
        yield
    finally:
        if token is not None:
            _holding_writer_lock.reset(token)
        if acquired and lock is not None:
            lock.release()


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """The unit-of-work boundary: services never commit, this does (or rolls back).

    `read_only` transactions must not write; on SQLite they hold no lock (see `_begin_sqlite`),
    and writers take turns on an in-process queue before SQLite's lock (see `_writer_lock`).
    """
    async with (
        _queued_writer(None if read_only else _writer_lock(sessions)),
        sessions() as session,
    ):
        if read_only:
            await session.connection(execution_options={READ_ONLY: True})
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
