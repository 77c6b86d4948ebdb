"""Which process runs the sweeps, when several could: on PostgreSQL, the one holding a
session-level advisory lock (`pg_try_advisory_lock`) on a connection it keeps open. Every
process that would sweep (each `kiteline server --workers N` process, replicas, `kiteline
worker`) tries to take it before each round; one holds it, the others skip the round. When
the holder dies, its connection closes, the lock goes with it, and another takes it at its
next round. SQLite has one serving process: it always leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiteline.settings import Settings

log = logging.getLogger("kiteline.workers")

#: The advisory lock's key: "kite" + "swp" in ASCII, unlikely to meet another application's.
SWEEP_LOCK_KEY = 0x6B697465_737770
#: Log compaction and retention's lock (`workers.housekeeping`): "kite" + "hkp".
HOUSEKEEPING_LOCK_KEY = 0x6B697465_686B70


class SweepLeadership:
    """`await leads()` before each round of sweeps; `await release()` at the end."""

    def __init__(self, engine: AsyncEngine, *, key: int = SWEEP_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.connection: AsyncConnection | None = None

    async def leads(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        if self.connection is not None:
            try:
                await self.connection.execute(text("SELECT 1"))
                await self.connection.commit()
                return True
            except Exception:
                log.warning("lost the connection holding the sweep lock; trying again")
                await self._close()
        connection = await self.engine.connect()
        try:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            )
            await connection.commit()
        except Exception:
            await connection.close()
            raise
        if not taken:
            await connection.close()
            return False
        self.connection = connection
        log.info("process %d now runs the background sweeps", os.getpid())
        return True

    async def release(self) -> None:
        if self.connection is not None:
            try:
                await self.connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
                await self.connection.commit()
            except Exception:
                log.warning("could not release the sweep lock (closing its connection does)")
            await self._close()

    async def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                log.warning("could not close the sweep lock's connection", exc_info=True)


#: A sweep: its name (for the log) and one round of it, answering how many rows it handled.
Sweep = tuple[str, Callable[[], Awaitable[int]]]


async def sweep_while_leading(
    engine: AsyncEngine,
    settings: Settings,
    stop: asyncio.Event,
    sweeps: Callable[[], Sequence[Sweep]],
    *,
    key: int = SWEEP_LOCK_KEY,
) -> None:
    """Every `worker_interval_seconds` until `stop`: one round of each sweep, in the one
    process that holds the lock `key`; one failing sweep never stops the others."""
    leadership = SweepLeadership(engine, key=key)
    try:
        while not stop.is_set():
            if await _leads(leadership):
                await run_round(sweeps())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.worker_interval_seconds):
                    await stop.wait()
    finally:
        await leadership.release()


async def _leads(leadership: SweepLeadership) -> bool:
    try:
        return await leadership.leads()
    except Exception:
        log.exception("could not tell whether this process leads the sweeps; it asks again")
        return False


async def run_round(sweeps: Sequence[Sweep]) -> None:
    for name, sweep in sweeps:
        try:
            count = await sweep()
        except Exception:
            log.exception("the %s sweep failed; it runs again next time", name)
        else:
            if count:
                log.info("%s sweep handled %d row(s)", name, count)
