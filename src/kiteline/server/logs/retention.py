"""Retention of finished builds' logs: which logs are past it, and deleting them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build
from kiteline.server.jobs.models import Job
from kiteline.server.logs.models import JobLog, LogChunk


async def logs_of_builds_finished_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[tuple[uuid.UUID, str | None]]:
    """(job id, object key or None) of logs still kept, of builds finished before `cutoff`."""
    has_chunks = exists().where(LogChunk.job_id == Job.id)
    rows = await session.execute(
        select(Job.id, JobLog.key)
        .join(Build, Build.id == Job.build_id)
        .outerjoin(JobLog, JobLog.job_id == Job.id)
        .where(
            Build.finished_at < cutoff,
            or_(JobLog.state == "compacted", JobLog.job_id.is_(None) & has_chunks),
        )
        .limit(limit)
    )
    return [(job_id, key) for job_id, key in rows]
