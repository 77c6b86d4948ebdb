"""Reading the outbox, for the consumers that turn its events into effects (webhooks, live
web pages)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events.models import Event


async def unconsumed(
    session: AsyncSession, *, after_id: int, consumed: Select[Any], limit: int
) -> list[Event]:
    """Events above `after_id` whose ids the consumer's `consumed` query does not list, oldest
    first."""
    rows = await session.scalars(
        select(Event)
        .where(Event.id > after_id, Event.id.not_in(consumed))
        .order_by(Event.id)
        .limit(limit)
    )
    return list(rows)


async def newest_id_before(session: AsyncSession, cutoff: datetime, *, after_id: int) -> int | None:
    """The highest id above `after_id` among the events written before `cutoff`."""
    return await session.scalar(
        select(func.max(Event.id)).where(Event.id > after_id, Event.created_at < cutoff)
    )


async def latest_id(session: AsyncSession) -> int:
    """The id of the newest event, 0 when there is none."""
    return int(await session.scalar(select(func.max(Event.id))) or 0)


async def newer(
    session: AsyncSession,
    *,
    after_id: int,
    also_ids: Collection[int] = (),
    organization_id: uuid.UUID | None = None,
    limit: int,
) -> list[Event]:
    """Events above `after_id` and those of `also_ids` (ids a reader saw skipped, which may
    still commit), of one organization or all, oldest first."""
    where = Event.id > after_id
    if also_ids:
        where = or_(where, Event.id.in_(list(also_ids)))
    query = select(Event).where(where)
    if organization_id is not None:
        query = query.where(Event.organization_id == organization_id)
    rows = await session.scalars(query.order_by(Event.id).limit(limit))
    return list(rows)


@dataclass(frozen=True)
class Backlog:
    """Events a consumer has not taken yet, and when the oldest of them was written."""

    events: int
    oldest_created_at: datetime | None


async def backlog(session: AsyncSession, *, after_id: int, consumed: Select[Any]) -> Backlog:
    """What `unconsumed` would return, counted: events above `after_id` not in `consumed`."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(Event.created_at)).where(
                Event.id > after_id, Event.id.not_in(consumed)
            )
        )
    ).one()
    return Backlog(count, oldest)
