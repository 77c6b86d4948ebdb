"""Turns outbox events into deliveries (webhooks', and the commit statuses build events
mean), each event exactly once, in one transaction per batch.

Outbox ids are not always committed in order on PostgreSQL (a transaction that took id 10 can
commit after the one that took id 11), so a plain "last id seen" cursor could skip an event
for good. Instead, events fanned out are marked (`webhook_fanouts`), and a floor moves up
behind them: every event at or below it is done, or was never committed (rolled back, or
left in a transaction open longer than SETTLE, which Kiteline's short transactions never
are). Marks at or below the floor are dropped, so the table stays small.

One worker at a time fans out: the floor row is locked (PostgreSQL skips it when another
replica holds it; SQLite has one writer anyway).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events import outbox
from kiteline.server.events.outbox import Event
from kiteline.server.kit.slices import pause_if_due
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.sources import statuses
from kiteline.server.users import service as users
from kiteline.server.users.service import User
from kiteline.server.webhooks import payloads, queue, service
from kiteline.server.webhooks.models import Webhook, WebhookFanout, WebhookFanoutFloor
from kiteline.settings import Settings

log = logging.getLogger("kiteline.webhooks")

FLOOR = "webhooks"
BATCH = 200
SETTLE = timedelta(minutes=5)
DONE = select(WebhookFanout.event_id)


async def fan_out(
    session: AsyncSession, urls: Urls, *, now: datetime, settings: Settings | None = None
) -> int:
    """Fan out the next batch of events; returns how many were taken (BATCH: there may be
    more). With `settings`, build events also queue their commit statuses."""
    floor = await _lock_floor(session)
    if floor is None:
        return 0  # another worker is at it
    events = await outbox.unconsumed(session, after_id=floor.event_id, consumed=DONE, limit=BATCH)
    if events:
        webhooks = await service.enabled_in(session, {event.organization_id for event in events})
        senders = await users.get_many(
            session,
            {w.created_by_id for ws in webhooks.values() for w in ws if w.created_by_id},
        )
        renderer = payloads.Renderer(session, urls)
        for event in events:
            candidates = [
                webhook
                for webhook in webhooks.get(event.organization_id, [])
                if webhook.created_at <= event.created_at
                and service.subscribed(webhook, event.name)
            ]
            if candidates:
                organization = await organizations.get(session, event.organization_id)
                rendered = await renderer.event(organization, event)
                _deliver(session, event, rendered, candidates, senders)
            if settings is not None:
                await statuses.on_event(session, event, urls, settings)
            # A large build's thousands of job events come a batch at a time, batch after
            # batch: the loop is given up between events once the step has held it long.
            await pause_if_due()
        # The marks as rows of one statement, not as objects of the session's flush (which
        # spent milliseconds of the loop per batch on them; on SQLite the rows are then written
        # in a thread, kit/sqlite_driver).
        await session.execute(insert(WebhookFanout), [{"event_id": event.id} for event in events])
    await _raise_floor(session, floor, now)
    return len(events)


def _deliver(
    session: AsyncSession,
    event: Event,
    rendered: payloads.Rendered | None,
    webhooks: list[Webhook],
    senders: dict[uuid.UUID, User],
) -> None:
    if rendered is None:
        log.warning("event %d (%s): its subject is gone; nothing to send", event.id, event.name)
        return
    for webhook in webhooks:
        if service.accepts(webhook, pipeline_id=rendered.pipeline_id, branch=rendered.branch):
            sender = senders.get(webhook.created_by_id) if webhook.created_by_id else None
            queue.enqueue(
                session,
                webhook,
                event=event.name,
                event_id=event.id,
                payload=payloads.body(event.name, rendered.objects, sender),
            )


async def _lock_floor(session: AsyncSession) -> WebhookFanoutFloor | None:
    query = select(WebhookFanoutFloor).where(WebhookFanoutFloor.name == FLOOR)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    floor = await session.scalar(query)
    if floor is None and await session.get(WebhookFanoutFloor, FLOOR) is None:
        # The migration creates the row; this covers a schema made some other way.
        floor = WebhookFanoutFloor(name=FLOOR, event_id=0)
        session.add(floor)
        await session.flush()
    return floor


async def _raise_floor(session: AsyncSession, floor: WebhookFanoutFloor, now: datetime) -> None:
    settled = await outbox.newest_id_before(session, now - SETTLE, after_id=floor.event_id)
    bound = settled if settled is not None else floor.event_id
    first_open = await outbox.unconsumed(session, after_id=floor.event_id, consumed=DONE, limit=1)
    if first_open:
        bound = min(bound, first_open[0].id - 1)
    if bound > floor.event_id:
        floor.event_id = bound
        await session.execute(delete(WebhookFanout).where(WebhookFanout.event_id <= bound))


async def backlog(session: AsyncSession) -> outbox.Backlog:
    """The outbox events not yet fanned out into deliveries: those above the floor that no
    mark names (the marks are few: they are dropped as the floor rises)."""
    floor = await session.get(WebhookFanoutFloor, FLOOR)
    return await outbox.backlog(session, after_id=floor.event_id if floor else 0, consumed=DONE)
