"""Locking a build before one of its transitions (builds/transitions.py): one transaction at a
time settles a build's jobs, and the job a transition changes is re-read after the lock."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.refs import JobRef
from kiteline.server.jobs.service import Job
from kiteline.server.kit.errors import NotFound


async def lock(session: AsyncSession, build_id: uuid.UUID) -> Build:
    """The build re-read and locked until the transaction ends, so that one transaction at a
    time settles its jobs: two jobs finishing at once must not each see the other still
    running. (PostgreSQL row lock; SQLite serialises writing transactions already.)"""
    build = await session.scalar(
        select(Build)
        .where(Build.id == build_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if build is None:
        raise NotFound.of("build")
    return build


async def lock_for(session: AsyncSession, locked: Job | JobRef) -> tuple[Build, Job]:
    """Lock the job's build before changing the job, then (re-)read the job: it may have been
    changed (canceled, timed out) since it was looked at. A loaded `Job` is refreshed in place."""
    build = await lock(session, locked.build_id)
    return build, await jobs_service.get(session, locked.id, fresh=True)


#: A build with no job at this position or beyond has all its jobs read by `lock_with_jobs`.
SMALL_BUILD = 20

# The build locked (its row only: `OF builds`) and whether it has more jobs than a small one.
_LOCK_SIZED = (
    select(Build, jobs_service.reaches_position(Build.id, SMALL_BUILD))
    .where(Build.id == bindparam("build_id"))
    .with_for_update(of=Build)
    .execution_options(populate_existing=True)
)


async def lock_with_jobs(
    session: AsyncSession, locked: Job | JobRef
) -> tuple[Build, Job, list[Job] | None]:
    """`lock_for`, and for a small build (`SMALL_BUILD`) all of its jobs, read fresh after the
    lock in the statement that re-reads the job (they are what `advance` and a finish's
    "still running" check look at); None for a larger build, whose job alone is re-read."""
    row = (await session.execute(_LOCK_SIZED, {"build_id": locked.build_id})).first()
    if row is None:
        raise NotFound.of("build")
    build, large = row
    if large:
        return build, await jobs_service.get(session, locked.id, fresh=True), None
    jobs = await jobs_service.list_for_build(session, build.id, fresh=True)
    for each in jobs:
        if each.id == locked.id:
            return build, each, jobs
    raise NotFound.of("job")
