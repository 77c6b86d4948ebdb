"""A job's identity and standing, read without loading its row."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import execute_core
from kiteline.server.kit.errors import NotFound


class JobRef(NamedTuple):
    """Who a job belongs to and where it stands, read without loading the whole row: the agent
    API checks these on every call a running job makes (log chunks, state polls)."""

    id: uuid.UUID
    build_id: uuid.UUID
    organization_id: uuid.UUID
    agent_id: uuid.UUID | None
    state: str
    token_hash: str | None
    scheduled_at: datetime | None  # for the queue-wait metric when the job starts


# Built once, with parameters: constructing a statement costs about as much as running it.
_REF = select(*(getattr(Job, name) for name in JobRef._fields)).where(Job.id == bindparam("job_id"))


async def find_ref(session: AsyncSession, job_id: uuid.UUID) -> JobRef | None:
    row = (await execute_core(session, _REF, {"job_id": job_id})).first()
    return JobRef._make(row) if row is not None else None


async def ref(session: AsyncSession, job_id: uuid.UUID) -> JobRef:
    found = await find_ref(session, job_id)
    if found is None:
        raise NotFound.of("job")
    return found
