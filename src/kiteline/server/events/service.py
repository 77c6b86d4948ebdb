"""Writes domain events to the outbox, inside the caller's transaction.

A transaction's events are written together, in the order emitted, by one multi-row `INSERT`
as it commits (one statement however many transitions it made, where the ORM wrote one per
event and per flush). In a savepoint (a GraphQL mutation) they are added as rows at once, so
that the savepoint's rollback takes them with it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kiteline.server.events.models import Event
from kiteline.server.events.names import EventName
from kiteline.server.kit.db import after_commit_once, utcnow
from kiteline.server.kit.notify import outbox

_PENDING = "outbox_rows"
_INSERT = insert(Event)


def emit(
    session: AsyncSession,
    name: EventName,
    *,
    organization_id: uuid.UUID,
    subject_id: uuid.UUID,
    data: dict[str, Any] | None = None,
) -> None:
    """Record `name` (e.g. `build.finished`); it commits or rolls back with the state change."""
    row = {
        "organization_id": organization_id,
        "name": name,
        "subject_id": subject_id,
        "data": data or {},
        "created_at": utcnow(),
    }
    sync = session.sync_session
    if sync.in_nested_transaction():
        sync.add(Event(**row))
    else:
        sync.info.setdefault(_PENDING, []).append(row)
    after_commit_once(session, outbox.notify)  # one wake-up however many events it writes


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT, rows)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
