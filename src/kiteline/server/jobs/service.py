"""Jobs: new rows and queries (claiming one for an agent is jobs/claims.py, re-exported here).

Every change of a job's state is a function of jobs/transitions.py (each with its event and
wake-up); changes that move a *build* go through builds/transitions.py, which calls those and
then advances the build.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, Select, Text, bindparam, cast, exists, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.jobs import transitions
from kiteline.server.jobs.claims import UNREAD as UNREAD
from kiteline.server.jobs.claims import Claim as Claim
from kiteline.server.jobs.claims import Held as Held
from kiteline.server.jobs.claims import claim_next as claim_next
from kiteline.server.jobs.claims import current_of
from kiteline.server.jobs.claims import held_columns as held_columns
from kiteline.server.jobs.claims import may_claim as may_claim
from kiteline.server.jobs.definition import StepDefinition, StepDefinitionJSON
from kiteline.server.jobs.matching import tags_to_map
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.planned import PlannedJob
from kiteline.server.jobs.refs import JobRef as JobRef
from kiteline.server.jobs.refs import find_ref as find_ref
from kiteline.server.jobs.refs import ref as ref
from kiteline.server.jobs.states import ON_AGENT, TERMINAL, JobState, JobType
from kiteline.server.kit.db import execute_core, new_id
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.kit.secrets import hash_token


async def get(session: AsyncSession, job_id: uuid.UUID, *, fresh: bool = False) -> Job:
    """`fresh` re-reads a job already loaded in this session (refreshed in place)."""
    job = await session.get(Job, job_id, populate_existing=fresh)
    if job is None:
        raise NotFound.of("job")
    return job


async def find(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


_STATE_COUNTS = (
    select(Job.state, func.count())
    .where(Job.build_id == bindparam("build_id"), Job.retried.is_(False))
    .group_by(Job.state)
)


async def state_counts(session: AsyncSession, build_id: uuid.UUID) -> dict[str, int]:
    """How many of the build's jobs (retried ones left out) are in each state."""
    rows = await session.execute(_STATE_COUNTS, {"build_id": build_id})
    return {state: count for state, count in rows}


def reaches_position(build_id: Any, position: int) -> Any:
    """Whether the build (`build_id`, a column of another table) has a job at `position` or
    beyond, as an `EXISTS` clause (one probe of the build's position index): a caller reading
    the build's row learns with it whether the build is small enough to read all its jobs."""
    return exists().where(Job.build_id == build_id, Job.position >= position)


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Job]:
    if not ids:
        return {}
    rows = await session.scalars(select(Job).where(Job.id.in_(ids)))
    return {row.id: row for row in rows}


async def get_in_build(session: AsyncSession, *, build_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.build_id != build_id:
        raise NotFound.of("job")
    return job


async def list_for_build(
    session: AsyncSession, build_id: uuid.UUID, *, fresh: bool = False
) -> list[Job]:
    """The build's jobs; `fresh` re-reads ones already loaded in this session."""
    rows = await session.scalars(
        select(Job)
        .where(Job.build_id == build_id)
        .order_by(Job.position, Job.created_at)
        .execution_options(populate_existing=fresh)
    )
    return list(rows)


class JobListing(NamedTuple):
    """The columns of a job that its REST JSON shows, read without the ORM: build lists render
    a hundred jobs per page, and loading whole `Job` objects was a large share of the time."""

    id: uuid.UUID
    build_id: uuid.UUID
    step_id: uuid.UUID
    step_key: str | None
    type: str
    label: str | None
    command: str | None
    state: str
    agent_query_rules: list[str]
    definition: StepDefinition
    group_key: str | None
    artifact_paths: str | None
    priority: int
    exit_status: int | None
    signal: str | None
    signal_reason: str | None
    passed: bool | None
    soft_failed: bool
    agent_id: uuid.UUID | None
    retried: bool
    retried_in_job_id: uuid.UUID | None
    retries_count: int
    retry_type: str | None
    retry_source_job_id: uuid.UUID | None
    unblocked_by_id: uuid.UUID | None
    unblocked_at: datetime | None
    triggered_build_id: uuid.UUID | None
    created_at: datetime
    scheduled_at: datetime | None
    runnable_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class JobSummary(NamedTuple):
    """A job's columns as a build's web page shows them, read without the ORM: a page shows
    hundreds, and loading `Job` objects was the largest part of its time."""

    id: uuid.UUID
    build_id: uuid.UUID
    step_id: uuid.UUID
    step_key: str | None
    position: int
    type: str
    label: str | None
    command: str | None
    state: str
    agent_query_rules: list[str]
    definition: StepDefinition
    step: dict[str, Any]
    group_key: str | None
    continue_on_failure: bool
    exit_status: int | None
    signal: str | None
    signal_reason: str | None
    passed: bool | None
    soft_failed: bool
    agent_id: uuid.UUID | None
    retried: bool
    retries_count: int
    unblocked_by_id: uuid.UUID | None
    triggered_build_id: uuid.UUID | None
    created_at: datetime
    runnable_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    revision: int


_SUMMARIES = (
    select(
        *(
            # The definition as plain JSON: made a StepDefinition once per job revision below.
            type_coerce(Job.definition, JSON).label("definition")
            if name == "definition"
            else getattr(Job, name)
            for name in JobSummary._fields
        )
    )
    .where(Job.build_id == bindparam("build_id"))
    .order_by(Job.position, Job.created_at)
)
_DEFINITION = JobSummary._fields.index("definition")
_REVISION = JobSummary._fields.index("revision")
#: Definitions validated, by (job id, revision): a live build page reads its jobs after each
#: change of the build, and validating every job's definition (a pydantic model) each time
#: was most of the read; a revision names one state of the row (every change bumps it).
_DEFINITIONS: dict[tuple[uuid.UUID, int], StepDefinition] = {}
_DEFINITIONS_LIMIT = 20_000


def _definition(job_id: uuid.UUID, revision: int, stored: Any) -> StepDefinition:
    key = (job_id, revision)
    found = _DEFINITIONS.get(key)
    if found is None:
        found = StepDefinitionJSON().process_result_value(stored, None)  # type: ignore[arg-type]
        if len(_DEFINITIONS) >= _DEFINITIONS_LIMIT:
            _DEFINITIONS.clear()
        _DEFINITIONS[key] = found
    return found


async def summaries_for_build(session: AsyncSession, build_id: uuid.UUID) -> list[JobSummary]:
    """The build's jobs in step order (retried attempts before their retry), as JobSummary.
    Only for committed rows (read-only transactions: a rolled back change could reuse a
    revision)."""
    rows = await execute_core(session, _SUMMARIES, {"build_id": build_id})
    summaries = []
    for row in rows:
        values = list(row)
        values[_DEFINITION] = _definition(values[0], values[_REVISION], values[_DEFINITION])
        summaries.append(JobSummary._make(values))
    return summaries


async def ids_for_step(session: AsyncSession, *, build_id: uuid.UUID, step: str) -> list[uuid.UUID]:
    """Jobs of a build's step named by its key or its step id (`artifact search --step`)."""
    query = select(Job.id).where(Job.build_id == build_id)
    try:
        query = query.where(Job.step_id == uuid.UUID(step))
    except ValueError:
        query = query.where(Job.step_key == step)
    return list(await session.scalars(query))


async def retried_ids(session: AsyncSession, build_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.scalars(select(Job.id).where(Job.build_id == build_id, Job.retried))
    return set(rows)


async def get_by_token(session: AsyncSession, token: str) -> Job | None:
    return await session.scalar(select(Job).where(Job.token_hash == hash_token(token)))


async def current_for_agent(session: AsyncSession, agent_id: uuid.UUID) -> Job | None:
    job: Job | None = await session.scalar(current_of(agent_id, Job))
    return job


async def recent_for_agent(session: AsyncSession, agent_id: uuid.UUID, limit: int) -> list[Job]:
    """The jobs the agent took most recently, newest first (an agent's page)."""
    rows = await session.scalars(
        select(Job)
        .where(Job.agent_id == agent_id)
        .order_by(Job.assigned_at.desc(), Job.id)
        .limit(limit)
    )
    return list(rows)


async def release_assigned(session: AsyncSession, agent_id: uuid.UUID) -> None:
    """Hand a job assigned to this agent (but not yet accepted) back to the queue, waking
    held pings once that commits: an idle agent takes it at once, not at its next poll."""
    job = await current_for_agent(session, agent_id)
    if job is not None and job.state == JobState.ASSIGNED:
        transitions.release(session, job)


#: The fields of a planned job, copied onto its row.
_PLANNED_FIELDS = tuple(item.name for item in dataclasses.fields(PlannedJob))


def add(
    session: AsyncSession,
    planned: PlannedJob,
    *,
    organization_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    build_id: uuid.UUID,
    position: int,
    created_at: datetime,
) -> Job:
    """A new job row of a build, as its planner made it."""
    job = Job(
        # Its id now, not at the flush: a new build's jobs are scheduled (their events
        # written) before they are flushed.
        id=new_id(),
        organization_id=organization_id,
        pipeline_id=pipeline_id,
        build_id=build_id,
        position=position,
        created_at=created_at,
        # Not dataclasses.asdict: it deep-copies, and the plan is this build's alone.
        **{name: getattr(planned, name) for name in _PLANNED_FIELDS},
    )
    session.add(job)
    return job


#: The job states a pipeline's live counts count, and the count each goes to.
ACTIVE_COUNT_BUCKETS = {
    JobState.SCHEDULED: "scheduled",
    JobState.ASSIGNED: "scheduled",
    JobState.ACCEPTED: "running",
    JobState.RUNNING: "running",
    JobState.WAITING: "waiting",
}


async def active_counts_by_pipeline(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """`{pipeline_id: {"scheduled": n, "running": n, "waiting": n}}` for REST's pipeline counts."""
    buckets = ACTIVE_COUNT_BUCKETS
    result: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in pipeline_ids}
    if not pipeline_ids:
        return result
    rows = await session.execute(
        select(Job.pipeline_id, Job.state, func.count())
        .where(Job.pipeline_id.in_(pipeline_ids), Job.state.in_([s.value for s in buckets]))
        .group_by(Job.pipeline_id, Job.state)
    )
    for pipeline_id, state, count in rows:
        bucket = buckets[JobState(state)]
        result[pipeline_id][bucket] = result[pipeline_id].get(bucket, 0) + count
    return result


def _locked(session: AsyncSession, query: Any) -> Any:
    """Rows a sweep works on, locked and skipped by other replicas' sweeps on PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def overdue(session: AsyncSession, now: datetime) -> list[Job]:
    """Running jobs past their `timeout_in_minutes`."""
    rows = await session.scalars(
        _locked(
            session,
            select(Job).where(
                Job.state == JobState.RUNNING,
                Job.timeout_in_minutes.is_not(None),
                Job.started_at.is_not(None),
            ),
        )
    )
    return [
        job
        for job in rows
        if job.started_at is not None
        and job.timeout_in_minutes is not None
        and (now - job.started_at).total_seconds() > job.timeout_in_minutes * 60
    ]


async def unclaimed_since(session: AsyncSession, cutoff: datetime) -> list[Job]:
    """Scheduled jobs nobody has taken since `cutoff`."""
    rows = await session.scalars(
        _locked(
            session,
            select(Job).where(Job.state == JobState.SCHEDULED, Job.runnable_at < cutoff).limit(500),
        )
    )
    return list(rows)


async def held_by(session: AsyncSession, agent_id: uuid.UUID) -> list[Job]:
    rows = await session.scalars(
        select(Job).where(Job.agent_id == agent_id, Job.state.in_([s.value for s in ON_AGENT]))
    )
    return list(rows)


@dataclass(frozen=True)
class JobFilter:
    """GraphQL's job filters; `passed=False` includes soft failures, as Buildkite's does."""

    types: Sequence[str] = ()
    states: Sequence[str] = ()
    passed: bool | None = None
    step_keys: Sequence[str] = ()

    def conditions(self) -> list[Any]:
        conditions: list[Any] = []
        if self.types:
            conditions.append(Job.type.in_(self.types))
        if self.states:
            conditions.append(Job.state.in_(self.states))
        if self.passed is not None:
            conditions.append(Job.passed.is_(self.passed))
        if self.step_keys:
            conditions.append(Job.step_key.in_(self.step_keys))
        return conditions


#: The build's own order: its steps as planned, then attempts in the order they were made.
JOB_ORDERING: Ordering = ((Job.position, False), (Job.created_at, False), (Job.id, False))


async def pages_for_builds(
    session: AsyncSession, build_ids: Sequence[uuid.UUID], *, where: JobFilter, window: Window
) -> dict[uuid.UUID, Slice[Job]]:
    """A page of each build's jobs (retried attempts included) in one statement."""
    return await pages_per_parent(
        session,
        Job,
        parent=Job.build_id,
        parent_ids=build_ids,
        where=where.conditions(),
        ordering=JOB_ORDERING,
        window=window,
        small_families=True,
    )


async def counts_for_builds(
    session: AsyncSession, build_ids: Sequence[uuid.UUID], *, where: JobFilter
) -> dict[uuid.UUID, int]:
    return await counts_per_parent(
        session, parent=Job.build_id, parent_ids=build_ids, where=where.conditions()
    )


async def current_for_agents(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Job]:
    """Each agent's current job (as `current_for_agent`), for many agents in one query."""
    if not agent_ids:
        return {}
    rows = await session.scalars(
        select(Job)
        .where(Job.agent_id.in_(agent_ids), Job.state.in_([s.value for s in ON_AGENT]))
        .order_by(Job.assigned_at.desc())
    )
    # Oldest assignment last, so it wins: the same job `current_for_agent` picks.
    return {job.agent_id: job for job in rows if job.agent_id is not None}


async def unfinished_by_queue(
    session: AsyncSession, organization_ids: Sequence[uuid.UUID]
) -> dict[tuple[str, str], int]:
    """`{(state, queue): count}` of the organizations' command jobs not yet in a terminal
    state, for the metrics. Naming the organizations and the states lets both databases read
    `ix_jobs_dispatch` (organization, state, …) instead of every job ever run. Jobs group by
    their whole query rules (few distinct values), read as text: a PostgreSQL `json` value
    cannot be grouped; the queue comes out of the rules here."""
    if not organization_ids:
        return {}
    rules_text = cast(Job.agent_query_rules, Text)
    rows = await session.execute(
        select(Job.state, rules_text, func.count())
        .where(
            Job.organization_id.in_(organization_ids),
            Job.state.in_([state.value for state in JobState if state not in TERMINAL]),
            Job.type == JobType.SCRIPT,
        )
        .group_by(Job.state, rules_text)
    )
    counts: dict[tuple[str, str], int] = {}
    for state, rules, count in rows:
        queue = tags_to_map(json.loads(rules) if rules else [])["queue"]
        counts[state, queue] = counts.get((state, queue), 0) + count
    return counts


def finished_before(cutoff: datetime) -> Select[uuid.UUID]:
    """The ids of jobs that finished before `cutoff`, as a subquery for other domains' reads
    (log compaction)."""
    return select(Job.id).where(Job.finished_at < cutoff)


def of_builds(build_ids: Select[uuid.UUID]) -> Select[uuid.UUID]:
    """The ids of the jobs of the builds `build_ids` selects, as a subquery (log retention)."""
    return select(Job.id).where(Job.build_id.in_(build_ids))
