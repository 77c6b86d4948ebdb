"""Which builds a build list shows, and each one's signature, in one statement: the keys and
revisions `rendering` checks its cache with (docs/decisions/0010-build-json-cache.md)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Result, Select, String, bindparam, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build
from kiteline.server.builds.repository import BuildFilter, BuildListing, apply_filter
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.service import JobListing
from kiteline.server.kit.slices import pause_if_due
from kiteline.server.kit.sqlite_driver import fetched_in_thread

#: A build row's revision and its jobs' (id, revision), in the order the JSON lists them.
Signature = tuple[int, tuple[tuple[Any, int], ...]]

# Rows are keyed by ids as the driver returns them (`type_coerce` to String: no UUID object
# made per row, a page reads a hundred or more): a build's in the cache, a job's in signatures.
_BUILD_KEY = type_coerce(Build.id, String).label("key")
_JOB_KEY = type_coerce(Job.id, String).label("job_key")
_JOB_ORDER = (Job.position, Job.created_at, Job.id)
# Built once: constructing selects of twenty-odd columns is a visible cost per request.
_BUILD_ROWS = select(
    *(getattr(Build, name) for name in BuildListing._fields), Build.revision, _BUILD_KEY
)
_JOB_ROWS = select(
    *(getattr(Job, name) for name in JobListing._fields), Job.revision, _JOB_KEY
).order_by(*_JOB_ORDER)
_PAGE_COLUMNS: list[Any] = [Build.id, Build.revision, Build.created_at, Build.number]
_PAGE: Select[Any] = select(*_PAGE_COLUMNS)


class Listed(NamedTuple):
    """A build to show: its id as read (the cache's key) and its signature."""

    key: Any
    signature: Signature


def _listed_query(builds: Any, *order: Any) -> Select[Any]:
    """Keys and signatures of the builds `builds` (a subquery of builds' id, revision,
    created_at and number) selects, in one statement: the builds joined to their jobs."""
    return (
        select(type_coerce(builds.c.id, String), builds.c.revision, _JOB_KEY, Job.revision)
        .select_from(builds.outerjoin(Job, Job.build_id == builds.c.id))
        .order_by(*order, *_JOB_ORDER)
    )


#: Signature rows (four small columns each) read between two `pause_if_due()` checks.
_ROWS_PER_SLICE = 1000


async def _listed(
    session: AsyncSession, query: Select[Any], parameters: dict[str, Any] | None = None
) -> list[Listed]:
    revisions: dict[Any, int] = {}
    jobs: dict[Any, list[tuple[Any, int]]] = {}
    # Processed a slice at a time, the loop free between slices: a build of 20,000 jobs is
    # 20,000 rows. Read through Core: the ORM session processes a result's rows all at once
    # (a turn of 30-50 ms for those), Core as they are fetched. PostgreSQL's rows arrive while
    # the loop is free. SQLite's statements run on the loop's thread: the first slice is
    # fetched there, and when it is full (a large build's) the rest are fetched in one call
    # in a thread (decision 0048; a slice at a time, inline, they held the loop in turns of
    # 15-30 ms for half a second).
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        found = await connection.stream(query, parameters)
        rows: Sequence[Any] = await found.fetchmany(_ROWS_PER_SLICE)
        if len(rows) == _ROWS_PER_SLICE:
            with fetched_in_thread():
                rows = [*rows, *await found.all()]
        await found.close()
        slices = _in_slices(rows)
    else:
        slices = _fetched_in_slices(await connection.execute(query, parameters))
    async for rows in slices:
        for key, revision, job_key, job_revision in rows:
            if key not in revisions:
                revisions[key] = revision
                jobs[key] = []
            if job_key is not None:
                jobs[key].append((job_key, job_revision))
        await pause_if_due()
    return [Listed(key, (revision, tuple(jobs[key]))) for key, revision in revisions.items()]


async def _in_slices(rows: Sequence[Any]) -> AsyncIterator[Sequence[Any]]:
    for start in range(0, len(rows), _ROWS_PER_SLICE):
        yield rows[start : start + _ROWS_PER_SLICE]


async def _fetched_in_slices(found: Result[Any]) -> AsyncIterator[Sequence[Any]]:
    while rows := found.fetchmany(_ROWS_PER_SLICE):
        yield rows


def _page_query(*, pipeline_scoped: bool, where: BuildFilter) -> Select[Any]:
    """The page's builds newest first (offset, limit and ids as parameters), as `_listed`
    reads them."""
    query = _PAGE.where(Build.organization_id.in_(bindparam("organization_ids", expanding=True)))
    if pipeline_scoped:
        query = query.where(Build.pipeline_id == bindparam("pipeline_id"))
    page = (
        apply_filter(query, where)
        .order_by(Build.created_at.desc(), Build.number.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery()
    )
    return _listed_query(page, page.c.created_at.desc(), page.c.number.desc())


# Built once: most lists have no filter, and building the statement is a visible cost.
_UNFILTERED_PAGES = {
    scoped: _page_query(pipeline_scoped=scoped, where=BuildFilter()) for scoped in (False, True)
}


async def list_page(
    session: AsyncSession,
    *,
    organization_ids: Sequence[uuid.UUID],
    pipeline_id: uuid.UUID | None,
    where: BuildFilter,
    offset: int,
    limit: int,
) -> tuple[list[Listed], bool]:
    """One page of builds, newest first, as keys and signatures (and whether another page
    follows), in one statement whatever the page's builds look like."""
    scoped = pipeline_id is not None
    query = (
        _UNFILTERED_PAGES[scoped]
        if not any(getattr(where, name.name) for name in dataclasses.fields(where))
        else _page_query(pipeline_scoped=scoped, where=where)
    )
    parameters: dict[str, Any] = {
        "organization_ids": list(organization_ids),
        "offset": offset,
        "limit": limit + 1,
    }
    if scoped:
        parameters["pipeline_id"] = pipeline_id
    listed = await _listed(session, query, parameters)
    return listed[:limit], len(listed) > limit


async def listed_by_id(session: AsyncSession, build_ids: Sequence[uuid.UUID]) -> list[Listed]:
    """`list_page` for given builds, in their order (builds that don't exist left out)."""
    builds = _PAGE.where(Build.id.in_(build_ids)).subquery()
    listed = {
        uuid.UUID(str(item.key)): item
        for item in await _listed(session, _listed_query(builds, builds.c.id))
    }
    return [listed[build_id] for build_id in build_ids if build_id in listed]


def build_rows(build_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """The builds' listing columns, then each one's revision and key, for `rendering`."""
    return _BUILD_ROWS.where(Build.id.in_(build_ids))


def job_rows(build_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """Their jobs' listing columns, revision and key, in the order the builds' JSON lists them."""
    return _JOB_ROWS.where(Job.build_id.in_(build_ids))
