"""A large build's jobs written as plain rows: Core `executemany` of dicts, a slice at a time,
rather than one ORM object per job (decision 0043). Nothing is loaded into the session: the
caller reads the rows back when it needs them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.jobs.models import Job
from kiteline.server.kit.slices import pause_if_due

#: Rows per statement: each statement's work on the event loop (binding its rows' values)
#: stays a few milliseconds, and other requests are served between statements.
ROWS_PER_STATEMENT = 100

_INSERT = insert(Job)


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (each with the same keys, `Job`'s columns; the others take their
    defaults), `ROWS_PER_STATEMENT` at a time, in the caller's transaction."""
    connection = await session.connection()
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        await connection.execute(_INSERT, rows[start : start + ROWS_PER_STATEMENT])
        await pause_if_due()
