"""A serving process's sign of life, renewed in the background for as long as it serves (see
`agents.availability`, which the lost-agent sweep reads)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.agents import availability
from kiteline.server.kit.db import transaction, utcnow

log = logging.getLogger("kiteline.workers")


@asynccontextmanager
async def serving_presence(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Announce this process as serving the agent API (before any sweep of its own runs),
    renew that every PRESENCE_INTERVAL while the block runs, withdraw it at the end."""
    process_id = uuid.uuid4()
    async with transaction(sessions) as session:
        await availability.announce(session, process_id, utcnow())
    stop = asyncio.Event()
    renewing = asyncio.create_task(_renew(sessions, process_id, stop))
    try:
        yield
    finally:
        stop.set()
        await renewing
        try:
            async with transaction(sessions) as session:
                await availability.withdraw(session, process_id)
        except Exception:
            log.exception("could not withdraw this process from serving_processes")


async def _renew(
    sessions: async_sessionmaker[AsyncSession], process_id: uuid.UUID, stop: asyncio.Event
) -> None:
    interval = availability.PRESENCE_INTERVAL.total_seconds()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
        if stop.is_set():
            return
        try:
            async with transaction(sessions) as session:
                await availability.keep_alive(session, process_id, utcnow())
        except Exception:
            # The database is out of reach: agents cannot be served either, and the sweep
            # will count none of this as their silence once the renewals resume.
            log.warning("could not renew this process's sign of life", exc_info=True)
