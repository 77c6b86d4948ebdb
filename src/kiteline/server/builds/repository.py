"""Reads of builds shared by REST, GraphQL, the web pages and other domains: one build by id
or number, many at once, list filters, keyset pages and counts, meta-data, per-pipeline
summaries. Nothing here writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import Row, Select, bindparam, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.builds.states import FINISHED_FILTER, BuildState
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import JobState
from kiteline.server.kit.db import get_or_not_found
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.ids import INT32_MAX, parse_int
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.users.models import User


async def commit_was_built(session: AsyncSession, *, pipeline_id: uuid.UUID, commit: str) -> bool:
    found = await session.scalar(
        select(Build.id).where(Build.pipeline_id == pipeline_id, Build.commit == commit).limit(1)
    )
    return found is not None


async def get_by_id(session: AsyncSession, build_id: uuid.UUID) -> Build:
    return await get_or_not_found(session, Build, build_id, "build")


class Surroundings(NamedTuple):
    build: Build
    pipeline: Pipeline
    organization: Organization
    creator: User | None


async def with_surroundings(session: AsyncSession, build_id: uuid.UUID) -> Surroundings:
    """The build with its pipeline, organization and creator, in one statement (a job's
    environment needs all four on every accept)."""
    row = (
        await session.execute(
            select(Build, Pipeline, Organization, User)
            .join(Pipeline, Pipeline.id == Build.pipeline_id)
            .join(Organization, Organization.id == Build.organization_id)
            .outerjoin(User, User.id == Build.creator_id)
            .where(Build.id == build_id)
        )
    ).first()
    if row is None:
        raise NotFound.of("build")
    return Surroundings._make(row)


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Build]:
    if not ids:
        return {}
    rows = await session.scalars(select(Build).where(Build.id.in_(ids)))
    return {row.id: row for row in rows}


def parse_number(text: str) -> int:
    """A build number from a path: 404 for anything no build can have (`0`, `-1`, `2**64`,
    `x`), as for a build that doesn't exist."""
    number = parse_int(text, minimum=1, maximum=INT32_MAX)
    if number is None:
        raise NotFound.of("build")
    return number


async def get_by_number(session: AsyncSession, *, pipeline_id: uuid.UUID, number: int) -> Build:
    build = await session.scalar(
        select(Build).where(Build.pipeline_id == pipeline_id, Build.number == number)
    )
    if build is None:
        raise NotFound.of("build")
    return build


async def get_with_pipeline(
    session: AsyncSession, *, organization_id: uuid.UUID, slug: str, number: int
) -> tuple[Pipeline, Build]:
    """The organization's pipeline `slug` and its build `number` in one query (a page reads
    both for every request); 404 for the pipeline, else for the build, as reading them one
    after the other would."""
    found = (
        await session.execute(
            select(Pipeline, Build)
            .join(Build, Build.pipeline_id == Pipeline.id)
            .where(
                Pipeline.organization_id == organization_id,
                Pipeline.slug == slug,
                Build.number == number,
            )
        )
    ).first()
    if found is not None:
        return found[0], found[1]
    exists = await session.scalar(
        select(Pipeline.id).where(
            Pipeline.organization_id == organization_id, Pipeline.slug == slug
        )
    )
    raise NotFound.of("build" if exists else "pipeline")


@dataclass(frozen=True)
class BuildFilter:
    branches: Sequence[str] = ()
    states: Sequence[str] = ()
    commits: Sequence[str] = ()
    creator_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    finished_from: datetime | None = None
    meta_data: dict[str, str] = field(default_factory=dict)


def apply_filter(query: Select[Any], where: BuildFilter) -> Select[Any]:
    if where.branches:
        exact = [b for b in where.branches if "*" not in b]
        clauses = [Build.branch.in_(exact)] if exact else []
        clauses += [Build.branch.like(b.replace("*", "%")) for b in where.branches if "*" in b]
        query = query.where(or_(*clauses))
    if where.states:
        states: list[str] = []
        for state in where.states:
            states.extend(FINISHED_FILTER if state == "finished" else [state])
        query = query.where(Build.state.in_(states))
    if where.commits:
        query = query.where(Build.commit.in_(where.commits))
    if where.creator_id is not None:
        query = query.where(Build.creator_id == where.creator_id)
    if where.created_from is not None:
        query = query.where(Build.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(Build.created_at < where.created_to)
    if where.finished_from is not None:
        query = query.where(Build.finished_at >= where.finished_from)
    for key, value in where.meta_data.items():
        query = query.where(
            select(BuildMetaData.build_id)
            .where(
                BuildMetaData.build_id == Build.id,
                BuildMetaData.key == key,
                BuildMetaData.value == value,
            )
            .exists()
        )
    return query


async def latest(
    session: AsyncSession, pipeline_id: uuid.UUID, *, branch: str | None = None
) -> tuple[uuid.UUID, str] | None:
    """The id and state of the pipeline's newest build (on `branch`, matched as the REST
    list's `branch` filter matches it), None when it has none: what its badge shows."""
    where = _build_conditions(BuildFilter(branches=(branch,) if branch else ()), None)
    query = select(Build.id, Build.state).where(Build.pipeline_id == pipeline_id, *where)
    row = (
        await session.execute(query.order_by(Build.created_at.desc(), Build.number.desc()).limit(1))
    ).first()
    return (row[0], str(row[1])) if row is not None else None


class BuildListing(NamedTuple):
    """The columns of a build that its REST JSON shows, read without the ORM (as
    `jobs.service.JobListing`, for the same reason: a list page renders a hundred)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    pipeline_id: uuid.UUID
    number: int
    state: str
    blocked: bool
    message: str | None
    commit: str
    branch: str
    tag: str | None
    env: dict[str, str]
    source: str
    author: dict[str, Any]
    pull_request: dict[str, Any] | None
    creator_id: uuid.UUID | None
    rebuilt_from_id: uuid.UUID | None
    triggered_from_job_id: uuid.UUID | None
    cancel_reason: str | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    failing_at: datetime | None
    finished_at: datetime | None


async def meta_data_for(
    session: AsyncSession, build_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, str]]:
    result: dict[uuid.UUID, dict[str, str]] = {build_id: {} for build_id in build_ids}
    if not build_ids:
        return result
    rows = await session.scalars(select(BuildMetaData).where(BuildMetaData.build_id.in_(build_ids)))
    for row in rows:
        result[row.build_id][row.key] = row.value
    return result


@dataclass(frozen=True)
class PipelineCounts:
    scheduled_builds_count: int = 0
    running_builds_count: int = 0
    scheduled_jobs_count: int = 0
    running_jobs_count: int = 0
    waiting_jobs_count: int = 0


# Builds' and jobs' live counts in one statement (a round trip each was a visible part of a
# build list's time), built once.
_LIVE_COUNTS = union_all(
    select(Build.pipeline_id, literal("build"), Build.state, func.count())
    .where(
        Build.pipeline_id.in_(bindparam("pipeline_ids", expanding=True)),
        Build.state.in_([BuildState.SCHEDULED, BuildState.RUNNING, BuildState.FAILING]),
    )
    .group_by(Build.pipeline_id, Build.state),
    select(Job.pipeline_id, literal("job"), Job.state, func.count())
    .where(
        Job.pipeline_id.in_(bindparam("pipeline_ids", expanding=True)),
        Job.state.in_([state.value for state in jobs_service.ACTIVE_COUNT_BUCKETS]),
    )
    .group_by(Job.pipeline_id, Job.state),
)


async def counts_for_pipelines(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PipelineCounts]:
    """The live build and job counts REST shows on a pipeline, for many pipelines at once."""
    if not pipeline_ids:
        return {}
    tallies: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in pipeline_ids}
    for pipeline_id, kind, state, count in await session.execute(
        _LIVE_COUNTS, {"pipeline_ids": list(pipeline_ids)}
    ):
        if kind == "build":
            key = (
                "scheduled_builds_count"
                if state == BuildState.SCHEDULED
                else "running_builds_count"
            )
        else:
            key = f"{jobs_service.ACTIVE_COUNT_BUCKETS[JobState(state)]}_jobs_count"
        tallies[pipeline_id][key] = tallies[pipeline_id].get(key, 0) + count
    return {pid: PipelineCounts(**values) for pid, values in tallies.items()}


@dataclass(frozen=True)
class RecentBuild:
    """What a pipelines list shows of one of a pipeline's last builds."""

    pipeline_id: uuid.UUID
    number: int
    state: str
    blocked: bool
    message: str | None
    branch: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


RECENT_BRANCHES_PER_STATEMENT = 400


async def recent_for_pipelines(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID], *, per_pipeline: int = 10
) -> dict[uuid.UUID, list[RecentBuild]]:
    """Each pipeline's last `per_pipeline` builds, oldest first (the newest last), in one
    statement for all of them: a `UNION ALL` of one branch per pipeline, each the first
    `per_pipeline` entries of the `(pipeline_id, number)` index read backwards. That costs
    about `per_pipeline` index entries a pipeline however long its history, and needs no
    planner statistics to be planned so (ranking every build with `row_number()`, or a
    correlated "10th newest number" floor, were either slow with long histories or, on a
    PostgreSQL not yet analyzed, flattened into a scan of every build: decision 0019)."""
    if not pipeline_ids:
        return {}
    columns = (
        Build.pipeline_id,
        Build.number,
        Build.state,
        Build.blocked,
        Build.message,
        Build.branch,
        Build.created_at,
        Build.started_at,
        Build.finished_at,
    )
    branches = []
    for pipeline_id in dict.fromkeys(pipeline_ids):
        newest = (
            select(*columns)
            .where(Build.pipeline_id == pipeline_id)
            .order_by(Build.number.desc())
            .limit(per_pipeline)
            .subquery()
        )
        branches.append(select(newest))
    rows: list[Row[Any]] = []
    # SQLite allows at most 500 members in a compound select: a longer list takes more.
    for start in range(0, len(branches), RECENT_BRANCHES_PER_STATEMENT):
        chunk = branches[start : start + RECENT_BRANCHES_PER_STATEMENT]
        rows.extend(await session.execute(union_all(*chunk)))
    recent: dict[uuid.UUID, list[RecentBuild]] = {pid: [] for pid in pipeline_ids}
    for row in rows:
        recent[row.pipeline_id].append(
            RecentBuild(
                pipeline_id=row.pipeline_id,
                number=row.number,
                state=row.state,
                blocked=row.blocked,
                message=row.message,
                branch=row.branch,
                created_at=row.created_at,
                started_at=row.started_at,
                finished_at=row.finished_at,
            )
        )
    for builds in recent.values():
        builds.sort(key=lambda build: build.number)
    return recent


async def get_meta_data(session: AsyncSession, build_id: uuid.UUID, key: str) -> str | None:
    row = await session.get(BuildMetaData, (build_id, key))
    return row.value if row is not None else None


#: Newest first, as build lists are; the id breaks ties so that cursors are exact.
BUILD_ORDERING: Ordering = ((Build.created_at, True), (Build.number, True), (Build.id, True))

BuildParent = Literal["pipeline", "creator"]


def _build_parent(parent: BuildParent) -> Any:
    return Build.pipeline_id if parent == "pipeline" else Build.creator_id


def _build_conditions(
    where: BuildFilter, organization_ids: Sequence[uuid.UUID] | None
) -> list[Any]:
    clause = apply_filter(select(Build), where).whereclause
    conditions = [clause] if clause is not None else []
    if organization_ids is not None:
        conditions.append(Build.organization_id.in_(organization_ids))
    return conditions


async def pages_by(
    session: AsyncSession,
    parent: BuildParent,
    parent_ids: Sequence[uuid.UUID],
    *,
    where: BuildFilter,
    window: Window,
    organization_ids: Sequence[uuid.UUID] | None = None,
) -> dict[uuid.UUID, Slice[Build]]:
    """A page of builds, newest first, for each pipeline (or creator) in one statement."""
    return await pages_per_parent(
        session,
        Build,
        parent=_build_parent(parent),
        parent_ids=parent_ids,
        where=_build_conditions(where, organization_ids),
        ordering=BUILD_ORDERING,
        window=window,
    )


async def counts_by(
    session: AsyncSession,
    parent: BuildParent,
    parent_ids: Sequence[uuid.UUID],
    *,
    where: BuildFilter,
    organization_ids: Sequence[uuid.UUID] | None = None,
) -> dict[uuid.UUID, int]:
    """How many builds match `where` for each pipeline (or creator)."""
    return await counts_per_parent(
        session,
        parent=_build_parent(parent),
        parent_ids=parent_ids,
        where=_build_conditions(where, organization_ids),
    )


def finished_before(cutoff: datetime) -> Select[uuid.UUID]:
    """The ids of builds that finished before `cutoff`, as a subquery (retention)."""
    return select(Build.id).where(Build.finished_at < cutoff)
