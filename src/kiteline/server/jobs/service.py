"""Jobs: row-level transitions (claim, accept, start, finish, cancel), tokens and queries.

Changes that move a *build* go through builds.service, which calls these and then advances
the build; nothing else writes the jobs table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, Text, bindparam, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events import service as events
from kiteline.server.jobs.matching import rules_match, tags_to_map
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import ON_AGENT, TERMINAL, JobState, JobType
from kiteline.server.kit.db import after_commit, execute_core, utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.kit.notify import dispatch
from kiteline.server.kit.secrets import generate_token, hash_token

#: How many runnable jobs a ping looks at before giving up on finding one its tags match.
CLAIM_CANDIDATES = 200
CLAIM_BATCH = 10
#: The queue's slices a ping reads (skip, take): the first few, where the job usually is, then
#: the rest of the candidates at once. Each read sorts the organization's runnable jobs that
#: tie on priority and runnable time (a large build's, all of them): 20 reads of 10 made a
#: ping behind a build of 20,000 jobs take seconds.
CLAIM_SLICES = ((0, CLAIM_BATCH), (CLAIM_BATCH, CLAIM_CANDIDATES - CLAIM_BATCH))


def emit_job_event(session: AsyncSession, name: str, job: Job | JobRef) -> None:
    events.emit(
        session,
        name,
        organization_id=job.organization_id,
        subject_id=job.id,
        data={"job_id": str(job.id), "build_id": str(job.build_id), "state": job.state},
    )


async def get(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound.of("job")
    return job


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
    definition: dict[str, Any]
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
    definition: dict[str, Any]
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
    select(*(getattr(Job, name) for name in JobSummary._fields))
    .where(Job.build_id == bindparam("build_id"))
    .order_by(Job.position, Job.created_at)
)


async def summaries_for_build(session: AsyncSession, build_id: uuid.UUID) -> list[JobSummary]:
    """The build's jobs in step order (retried attempts before their retry), as JobSummary."""
    rows = await execute_core(session, _SUMMARIES, {"build_id": build_id})
    return [JobSummary._make(row) for row in rows]


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


def _current_of(agent_id: Any, *columns: Any) -> Select[Any]:
    """The agent's current job (the oldest assignment still on it), as `columns`."""
    return (
        select(*columns)
        .where(Job.agent_id == agent_id, Job.state.in_([s.value for s in ON_AGENT]))
        .order_by(Job.assigned_at)
        .limit(1)
    )


async def current_for_agent(session: AsyncSession, agent_id: uuid.UUID) -> Job | None:
    job: Job | None = await session.scalar(_current_of(agent_id, Job))
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
        job.state = JobState.SCHEDULED
        job.agent_id = None
        job.assigned_at = None
        after_commit(session, dispatch.notify)


def add(session: AsyncSession, **fields: Any) -> Job:
    """A new job row (the build's planner decides its fields)."""
    job = Job(**fields)
    session.add(job)
    return job


async def active_counts_by_pipeline(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """`{pipeline_id: {"scheduled": n, "running": n, "waiting": n}}` for REST's pipeline counts."""
    buckets = {
        JobState.SCHEDULED: "scheduled",
        JobState.ASSIGNED: "scheduled",
        JobState.ACCEPTED: "running",
        JobState.RUNNING: "running",
        JobState.WAITING: "waiting",
    }
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


RETRY_COPIED_FIELDS = (
    "organization_id",
    "pipeline_id",
    "build_id",
    "step_id",
    "step_key",
    "position",
    "type",
    "label",
    "command",
    "agent_query_rules",
    "env",
    "depends_on",
    "allow_dependency_failure",
    "continue_on_failure",
    "step",
    "artifact_paths",
    "timeout_in_minutes",
    "priority",
    "definition",
    "group_key",
    "concurrency",
    "concurrency_group",
)


def retry(session: AsyncSession, job: Job, *, retry_type: str) -> Job:
    """The next attempt of `job`'s step (state left to the caller); marks `job` retried."""
    new = Job(
        id=uuid.uuid4(),
        **{name: getattr(job, name) for name in RETRY_COPIED_FIELDS},
        state=JobState.PENDING,
        retries_count=job.retries_count + 1,
        retry_type=retry_type,
        retry_source_job_id=job.id,
    )
    session.add(new)
    job.retried = True
    job.retried_in_job_id = new.id
    return new


def make_runnable(job: Job, now: datetime) -> None:
    job.state = JobState.SCHEDULED
    job.scheduled_at = job.scheduled_at or now
    job.runnable_at = now


# The statements of a claim, built once (see _REF).
_HELD = _current_of(bindparam("agent_id"), Job.id, Job.state)
_QUEUE = (
    select(Job.id, Job.agent_query_rules, Job.concurrency_group, Job.concurrency, Job.runnable_at)
    .where(
        Job.organization_id == bindparam("organization_id"),
        Job.state == JobState.SCHEDULED,
        Job.type == JobType.SCRIPT,
    )
    .order_by(Job.priority.desc(), Job.runnable_at, Job.position, Job.id)
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)
_CLAIM = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.state == JobState.SCHEDULED)
    .values(state=JobState.ASSIGNED, agent_id=bindparam("agent_id"), assigned_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


class Claim(NamedTuple):
    """The job a ping hands its agent; `runnable_at` and `assigned_at` only when this ping
    assigned it (not when an earlier one did and its answer was lost)."""

    job_id: uuid.UUID
    runnable_at: datetime | None = None
    assigned_at: datetime | None = None


async def claim_next(
    session: AsyncSession, *, agent_id: uuid.UUID, organization_id: uuid.UUID, tags: list[str]
) -> Claim | None:
    """Assign the best runnable job this agent's tags match: priority first, then oldest.
    Returns the job assigned to the agent (`assigned` is then its state).

    The final UPDATE is conditional on the job still being `scheduled`, so two agents (or two
    replicas) racing for one job cannot both win; the loser simply looks at the next one.
    """
    held = (await execute_core(session, _HELD, {"agent_id": agent_id})).first()
    if held is not None:
        return Claim(held.id) if held.state == JobState.ASSIGNED else None
    agent_tags = tags_to_map(tags)
    now = utcnow()
    # Usually the first candidate fits: read the queue a few at a time, not all of it.
    for skip, take in CLAIM_SLICES:
        found = await execute_core(
            session, _QUEUE, {"organization_id": organization_id, "skip": skip, "take": take}
        )
        candidates: list[Any] = list(found)
        for job_id, rules, group, limit, runnable_at in candidates:
            if not rules_match(rules or [], agent_tags):
                continue
            if group and limit and await _group_is_full(session, organization_id, group, limit):
                continue
            claimed = await execute_core(
                session, _CLAIM, {"job_id": job_id, "agent_id": agent_id, "now": now}
            )
            if claimed.rowcount == 1:
                return Claim(job_id, runnable_at, now)
        if len(candidates) < take:
            break
    return None


async def may_claim(
    session: AsyncSession, *, agent_id: uuid.UUID, organization_id: uuid.UUID, tags: list[str]
) -> bool:
    """Whether `claim_next` could find something for this agent: a job it holds, or one of the
    runnable jobs `claim_next` would look at matching its tags (concurrency groups not looked
    at). Reads only: a ping that finds nothing need not queue for SQLite's write lock."""
    if (await execute_core(session, _HELD, {"agent_id": agent_id})).first() is not None:
        return True
    agent_tags = tags_to_map(tags)
    for skip, take in CLAIM_SLICES:
        found = await execute_core(
            session, _QUEUE, {"organization_id": organization_id, "skip": skip, "take": take}
        )
        candidates: list[Any] = list(found)
        if any(rules_match(rules or [], agent_tags) for _, rules, _, _, _ in candidates):
            return True
        if len(candidates) < take:
            break
    return False


async def _group_is_full(
    session: AsyncSession, organization_id: uuid.UUID, group: str, limit: int
) -> bool:
    """Whether `limit` jobs of the concurrency group are already on agents.

    On PostgreSQL a transaction-scoped advisory lock per group serialises the check and the
    claim across replicas; SQLite already has one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"{organization_id}:{group}"},
        )
    running = await session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.organization_id == organization_id,
            Job.concurrency_group == group,
            Job.state.in_([state.value for state in ON_AGENT]),
        )
    )
    return (running or 0) >= limit


async def accept(
    session: AsyncSession, *, job_id: uuid.UUID, agent_id: uuid.UUID
) -> tuple[Job, str]:
    """`assigned` → `accepted`; returns the job and its freshly issued job token.

    Its agent accepting it again is answered as the first time, with a new token that
    replaces the first: the first answer was lost (a server restart, a dropped connection),
    and without a token the agent could never start or finish the job.
    """
    job = await session.get(Job, job_id, with_for_update=True)
    # A job not offered to this agent is none of its business, its state included (another
    # organization's job above all): as if it didn't exist.
    if job is None or job.agent_id != agent_id:
        raise NotFound.of("job")
    if job.state not in (JobState.ASSIGNED, JobState.ACCEPTED):
        raise Unprocessable(f"Job can't be accepted: its state is {job.state}")
    token = generate_token("bkaj_")
    if job.state == JobState.ASSIGNED:
        job.state = JobState.ACCEPTED
        job.accepted_at = utcnow()
    job.token_hash = hash_token(token)
    return job, token


_START = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.state == JobState.ACCEPTED)
    .values(state=JobState.RUNNING, started_at=bindparam("started_at"))
    .execution_options(synchronize_session=False)
)


async def start_accepted(session: AsyncSession, job: JobRef, started_at: datetime) -> JobRef:
    """`accepted` → `running` in one statement, the job not loaded (see `start`)."""
    started = await execute_core(session, _START, {"job_id": job.id, "started_at": started_at})
    if started.rowcount != 1:
        current = await ref(session, job.id)
        raise Unprocessable(f"Job can't be started: its state is {current.state}")
    return job._replace(state=JobState.RUNNING)


def reported_time(
    reported: datetime | None, *, now: datetime, not_before: datetime | None = None
) -> datetime:
    """A time an agent reports by its own clock (a job's start or finish), kept within what
    the server knows: never later than `now`, never before `not_before`; `now` if unreported."""
    if reported is None:
        return now
    bounded = min(reported, now)
    return max(bounded, not_before) if not_before is not None else bounded


def start(job: Job, started_at: datetime | None) -> None:
    if job.state != JobState.ACCEPTED:
        raise Unprocessable(f"Job can't be started: its state is {job.state}")
    job.state = JobState.RUNNING
    job.started_at = reported_time(started_at, now=utcnow())


def finish(
    job: Job,
    *,
    exit_status: int,
    signal: str | None,
    signal_reason: str | None,
    finished_at: datetime | None,
    chunks_failed_count: int,
) -> None:
    """Record the outcome; a job being canceled or timed out lands in that state instead."""
    if job.state not in (JobState.RUNNING, JobState.CANCELING, JobState.TIMING_OUT):
        raise Unprocessable(f"Job can't be finished: its state is {job.state}")
    job.state = {
        JobState.CANCELING: JobState.CANCELED,
        JobState.TIMING_OUT: JobState.TIMED_OUT,
    }.get(JobState(job.state), JobState.FINISHED)
    job.exit_status = exit_status
    job.signal = signal
    job.signal_reason = signal_reason
    # The agent's finish time, not when the call got through (it may have waited out an
    # outage); bounded by the server's clock.
    job.finished_at = reported_time(finished_at, now=utcnow(), not_before=job.started_at)
    job.chunks_failed_count = chunks_failed_count
    job.passed = exit_status == 0 and job.state == JobState.FINISHED


def repeats_finish(job: Job, exit_status: int) -> bool:
    """Whether a finish call repeats the one that finished the job: its agent retrying a call
    whose answer was lost (a server restart, a dropped connection). A job the server finished
    for a lost agent is not the agent's finish."""
    return (
        job.state in (JobState.FINISHED, JobState.CANCELED, JobState.TIMED_OUT)
        and job.exit_status == exit_status
        and job.signal_reason != "agent_lost"
    )


def cancel(job: Job, now: datetime) -> bool:
    """Cancel one job: on an agent it goes `canceling` (the agent stops it), else `canceled`."""
    if job.state in (JobState.ACCEPTED, JobState.RUNNING, JobState.TIMING_OUT):
        job.state = JobState.CANCELING
        job.canceled_at = now
        return True
    if job.state in (
        JobState.PENDING,
        JobState.WAITING,
        JobState.SCHEDULED,
        JobState.ASSIGNED,
        JobState.BLOCKED,
        JobState.LIMITING,
        JobState.LIMITED,
    ):
        job.state = JobState.CANCELED
        job.canceled_at = now
        job.finished_at = now
        job.passed = False
        return True
    return False


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


def time_out(job: Job) -> None:
    """`running` → `timing_out`: the agent sees it on its next state poll and stops the job."""
    job.state = JobState.TIMING_OUT


def expire(job: Job, now: datetime) -> None:
    job.state = JobState.EXPIRED
    job.expired_at = now
    job.finished_at = now
    job.passed = False


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
