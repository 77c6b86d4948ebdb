"""Writes domain events to the outbox, inside the caller's transaction.

A transaction's events are written together, in the order emitted, by one multi-row `INSERT`
as its outermost transaction commits (one statement however many transitions it made, where the
ORM wrote one per event and per flush). A savepoint (a GraphQL mutation runs in one) notes where
its events begin; its rollback drops the events from there on and keeps those emitted before it,
so the outbox's ids follow the order of emission whatever nests.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from kiteline.server.events.models import Event
from kiteline.server.events.names import EventName
from kiteline.server.kit.db import after_commit_once, utcnow
from kiteline.server.kit.notify import outbox
from kiteline.server.kit.slices import pause_if_due

_PENDING = "outbox_rows"
_MARKS = "outbox_savepoint_marks"
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
    row = _row(name, organization_id, subject_id, data or {})
    session.sync_session.info.setdefault(_PENDING, []).append(row)
    after_commit_once(session, outbox.notify)  # one wake-up however many events it writes


def _row(
    name: EventName, organization_id: uuid.UUID, subject_id: uuid.UUID, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "organization_id": organization_id,
        "name": name,
        "subject_id": subject_id,
        "data": data,
        "created_at": utcnow(),
    }


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = len(session.info.get(_PENDING, ()))


#: Events written per statement by `emit_each`, and made between two `pause_if_due()` checks.
ROWS_PER_STATEMENT = 250


async def emit_each(
    session: AsyncSession,
    name: EventName,
    subjects: Sequence[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]],
) -> None:
    """`emit(name)` for each `(organization_id, subject_id, data)`, in order, written now a
    slice at a time (a large build's thousands of `job.scheduled`), the loop free between
    slices, where the pending events written at once at commit held it in one piece. The
    events the transaction emitted before are written first: the order is `emit`'s. In a
    savepoint they are only added to the pending events (written at the outermost commit, as
    `emit`'s are): written now, the outer transaction's earlier events would go with them
    into the savepoint."""
    rows: list[dict[str, Any]] = []
    for index, (organization_id, subject_id, data) in enumerate(subjects):
        rows.append(_row(name, organization_id, subject_id, data))
        if index % ROWS_PER_STATEMENT == 0:
            await pause_if_due()
    if not rows:
        return
    sync = session.sync_session
    after_commit_once(session, outbox.notify)
    if sync.in_nested_transaction():
        sync.info.setdefault(_PENDING, []).extend(rows)
        return
    rows[:0] = sync.info.pop(_PENDING, [])
    connection = await session.connection()
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        await connection.execute(_INSERT, rows[start : start + ROWS_PER_STATEMENT])
        await pause_if_due()


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release: its events wait for the root
        return
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT, rows)


@event.listens_for(Session, "after_soft_rollback")
def _drop_savepoints_events(session: Session, transaction: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(transaction, None)
    if mark is not None:
        del session.info.get(_PENDING, [])[mark:]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost: committed (rows written) or rolled back
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)
