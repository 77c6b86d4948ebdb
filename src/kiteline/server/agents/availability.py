"""Whether the agent API is being served, and since when: the lost-agent sweep's clock.

An agent can only be heard from while some process serves the agent API. Each such process
keeps a row in `serving_processes` fresh (`keep_alive`, every PRESENCE_INTERVAL); the sweep,
wherever it runs (in a server, in another replica, in `kiteline worker`), counts an agent's
silence from the latest (re)start of a live serving process, and not at all while none is
live. So a restart gives every agent a full `lost_after` again, and neither a server's own
downtime nor a stall of its event loop counts as its agents' silence.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents.models import ServingProcess
from kiteline.server.kit.db import UTCDateTime, execute_core

#: How often a serving process renews its sign of life.
PRESENCE_INTERVAL = timedelta(seconds=1)
#: A serving process not heard from for this long is taken as gone (killed, stalled, cut off
#: from the database); when it is heard from again its serving starts over.
PRESENCE_TIMEOUT = timedelta(seconds=5)
#: Rows of processes gone this long are deleted.
FORGET_AFTER = timedelta(days=1)


async def announce(session: AsyncSession, process_id: uuid.UUID, now: datetime) -> None:
    """A process starts serving now (and forgets processes long gone)."""
    await session.execute(
        delete(ServingProcess).where(ServingProcess.alive_at < now - FORGET_AFTER)
    )
    await session.execute(
        insert(ServingProcess).values(
            id=process_id,
            hostname=socket.gethostname()[:200],
            pid=os.getpid(),
            serving_since=now,
            alive_at=now,
        )
    )


async def keep_alive(session: AsyncSession, process_id: uuid.UUID, now: datetime) -> None:
    """Renew the process's sign of life; after a silence past PRESENCE_TIMEOUT (a stalled
    loop, a database out of reach) its serving starts over, as after a restart."""
    renewed = await execute_core(
        session,
        update(ServingProcess)
        .where(ServingProcess.id == process_id)
        .values(
            alive_at=now,
            serving_since=case(
                # Typed as the column, so that SQLite stores it as it stores every time.
                (ServingProcess.alive_at < now - PRESENCE_TIMEOUT, literal(now, UTCDateTime)),
                else_=ServingProcess.serving_since,
            ),
        )
        .execution_options(synchronize_session=False),
        {},
    )
    if renewed.rowcount == 0:  # forgotten while it was out of reach for a day: start over
        await announce(session, process_id, now)


async def withdraw(session: AsyncSession, process_id: uuid.UUID) -> None:
    """The process stops serving (a graceful shutdown)."""
    await session.execute(delete(ServingProcess).where(ServingProcess.id == process_id))


async def serving_since(session: AsyncSession, now: datetime) -> datetime | None:
    """The latest (re)start among processes serving now, or None when none is."""
    since: datetime | None = await session.scalar(
        select(func.max(ServingProcess.serving_since)).where(
            ServingProcess.alive_at >= now - PRESENCE_TIMEOUT
        )
    )
    return since
