"""Writes domain events to the outbox, inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events.models import Event
from kiteline.server.events.names import EventName
from kiteline.server.kit.db import after_commit_once
from kiteline.server.kit.notify import outbox


def emit(
    session: AsyncSession,
    name: EventName,
    *,
    organization_id: uuid.UUID,
    subject_id: uuid.UUID,
    data: dict[str, Any] | None = None,
) -> Event:
    """Record `name` (e.g. `build.finished`); it commits or rolls back with the state change."""
    event = Event(
        name=name, organization_id=organization_id, subject_id=subject_id, data=data or {}
    )
    session.add(event)
    after_commit_once(session, outbox.notify)  # one wake-up however many events it writes
    return event
