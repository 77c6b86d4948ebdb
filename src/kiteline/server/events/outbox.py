"""Reading the outbox, for the consumers that turn its events into effects (webhooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
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
