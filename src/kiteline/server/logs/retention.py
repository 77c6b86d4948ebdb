"""Retention of finished builds' logs: which logs are past it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository as builds
from kiteline.server.jobs import service as jobs
from kiteline.server.logs.models import JobLog, LogChunk


async def logs_of_builds_finished_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[tuple[uuid.UUID, str | None]]:
    """(job id, object key or None) of logs still kept, of builds finished before `cutoff`:
    compacted ones, and ones still in chunks."""
    expired = jobs.of_builds(builds.finished_before(cutoff))
    compacted = await session.execute(
        select(JobLog.job_id, JobLog.key)
        .where(JobLog.state == "compacted", JobLog.job_id.in_(expired))
        .limit(limit)
    )
    found: list[tuple[uuid.UUID, str | None]] = [(job_id, key) for job_id, key in compacted]
    chunked = await session.scalars(
        select(LogChunk.job_id)
        .outerjoin(JobLog, JobLog.job_id == LogChunk.job_id)
        .where(LogChunk.job_id.in_(expired), JobLog.job_id.is_(None))
        .distinct()
        .limit(limit)
    )
    found.extend((job_id, None) for job_id in chunked)
    return found[:limit]
