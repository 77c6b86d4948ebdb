"""The build state machine: every change that can move a build, each in one function.

A transition locks the build, applies its job transition (jobs/transitions.py: the state, its
outbox event and the agent wake-up it implies, together), then `advance`s the build: waiting
jobs whose dependencies are settled become runnable (or `waiting_failed`), and the build's own
state follows from its jobs (`derive`), writing its own event when it changes. Nothing else
assigns a build's or a job's state; everything here writes in the caller's transaction.

    build transition   event            job transitions it applies
    schedule           build.scheduled  (advance)
    derive             build.running, build.failing, build.finished
    skip               build.finished   settle skipped / cancel
    cancel             (derive)         cancel, wakes agents
    reopen             -                (work added to a finished build)

The state a build's jobs make it is `outcomes.derived_state` (pure); taking the build's lock
and re-reading the job a transition changes is builds/locks.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import bulk, creation, outcomes
from kiteline.server.builds.creation import JOBS_PER_FLUSH, LARGE_BUILD, NewBuild, Prepared
from kiteline.server.builds.fields import validate_block_fields
from kiteline.server.builds.locks import lock, lock_for, lock_with_jobs
from kiteline.server.builds.meta_data import set_meta_data
from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.builds.outcomes import derived_state
from kiteline.server.builds.states import FINISHED, BuildState
from kiteline.server.events import service as events
from kiteline.server.events.names import EventName
from kiteline.server.jobs import bulk as jobs_bulk
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs import transitions as job_transitions
from kiteline.server.jobs.definition import ManualRetry
from kiteline.server.jobs.refs import JobRef
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.states import TERMINAL, JobState, JobType
from kiteline.server.kit import collector, slices
from kiteline.server.kit.db import execute_core, utcnow
from kiteline.server.kit.errors import (
    BadRequest,
    KitelineError,
    NotFound,
    Unprocessable,
    ValidationFailed,
)
from kiteline.server.organizations import service as organizations_service
from kiteline.server.pipelines import service as pipelines_service


def emit(session: AsyncSession, name: EventName, build: Build) -> None:
    events.emit(
        session,
        name,
        organization_id=build.organization_id,
        subject_id=build.id,
        data={
            "build_id": str(build.id),
            "pipeline_id": str(build.pipeline_id),
            "state": build.state,
            "blocked": build.blocked,
        },
    )


async def schedule(session: AsyncSession, prepared: Prepared) -> Build:
    """Write a prepared build (`scheduled`) and its jobs, then advance it: its first steps
    become runnable."""
    build, _ = await schedule_with_jobs(session, prepared)
    return build


async def schedule_with_jobs(
    session: AsyncSession, prepared: Prepared
) -> tuple[Build, list[Job] | None]:
    """`schedule`, and the build's jobs as it wrote them (for an answer rendered from them);
    None for a build of `LARGE_BUILD` jobs or more, whose jobs are let go as soon as written."""
    build = prepared.build
    session.add(build)
    for key, value in prepared.meta_data.items():
        session.add(BuildMetaData(build_id=build.id, key=key, value=value))
    await session.flush()
    large = len(prepared.jobs) >= LARGE_BUILD
    # A large build's jobs are alive until it is advanced: no full collection meanwhile.
    with collector.Hold(engaged=large):
        if large and await _schedule_as_rows(session, build, prepared):
            return build, None
        added = await creation.add_jobs(
            session, build, prepared.jobs, first_position=0, now=build.created_at, flush=large
        )
        emit(session, EventName.BUILD_SCHEDULED, build)
        # Nobody else sees the build before this transaction commits: no lock to take, and
        # its jobs are the ones just added.
        await advance(session, build, locked=True, jobs=added)
        if not large:
            # Its (last) jobs written now, as `advance` left them: one INSERT, no UPDATE.
            await session.flush()
        await slices.release(prepared.jobs)
        if large:
            # Its jobs' objects are freed a slice at a time, not all at once when the last
            # reference goes; its answer is read back in slices (`None` says so).
            await slices.release(added)
            return build, None
    return build, added


async def _schedule_as_rows(session: AsyncSession, build: Build, prepared: Prepared) -> bool:
    """A large build's jobs settled in a thread and written as rows, with the events and
    changes `add_jobs` then `advance` make, in their order (builds/bulk.py); False, nothing
    written, when a job needs the ORM path (a trigger step that fires at once)."""
    now = utcnow()
    settled = await asyncio.to_thread(bulk.settle, build, prepared.jobs, now, derived_state)
    if settled is None:
        return False
    await jobs_bulk.insert_rows(session, settled.rows)
    emit(session, EventName.BUILD_SCHEDULED, build)
    await events.emit_each(session, EventName.JOB_SCHEDULED, settled.scheduled)
    if settled.scheduled:
        job_transitions.wake_agents(session)
    await _change_to(session, build, settled.state, settled.blocked_state, [], now)
    await slices.release(prepared.jobs)
    await slices.release(settled.rows)
    return True


async def skip(session: AsyncSession, build: Build, *, by: Build) -> None:
    """Skip a build no agent has started: its jobs are skipped (or canceled, when an agent
    holds one) and it finishes `skipped`."""
    now = utcnow()
    for each in await jobs_service.list_for_build(session, build.id):
        if each.state in TERMINAL:
            continue
        if each.state in (JobState.PENDING, JobState.WAITING, JobState.SCHEDULED, JobState.BLOCKED):
            job_transitions.settle(each, JobState.SKIPPED, now, passed=False)
        else:
            job_transitions.cancel(session, each, now)
    build.state = BuildState.SKIPPED
    build.blocked = False
    build.finished_at = now
    build.cancel_reason = f"Skipped by newer build #{by.number}"
    emit(session, EventName.BUILD_FINISHED, build)


# Build states in which one more job starting changes nothing about the build.
UNDER_WAY = frozenset({BuildState.RUNNING, BuildState.FAILING, BuildState.CANCELING})


async def advance(
    session: AsyncSession, build: Build, *, locked: bool = False, jobs: list[Job] | None = None
) -> None:
    """Settle waiting jobs whose dependencies finished, then derive the build's state.

    A settled job becomes, by type: a command job `scheduled` for agents, a wait step passed,
    a block or input step `blocked` for a person, a trigger step a new build of its pipeline.
    `locked`: the caller has just locked (and so re-read) `build` in this transaction, or
    created it; `jobs`: all of the build's jobs, when the caller has just created them.
    """
    if not locked:
        build = await lock(session, build.id)
    if jobs is None:
        jobs = await jobs_service.list_for_build(session, build.id, fresh=True)
    now = utcnow()
    current = [each for each in jobs if not each.retried]
    by_step: dict[str, list[Job]] = {}
    for each in current:
        by_step.setdefault(str(each.step_id), []).append(each)
    changed = True
    settled = 0
    while changed:
        changed = False
        for each in current:
            if each.state != JobState.WAITING:
                continue
            verdict = outcomes.dependencies_verdict(each, by_step)
            if verdict is None:
                continue
            changed = True
            settled += 1
            if settled % JOBS_PER_FLUSH == 0:
                await session.flush()  # a large build's changes, written a slice at a time
            if build.state in (BuildState.CANCELING, BuildState.CANCELED):
                job_transitions.settle(each, JobState.CANCELED, now, passed=False)
            elif not verdict:
                job_transitions.settle(each, JobState.WAITING_FAILED, now, passed=False)
            elif each.type == JobType.WAITER:
                job_transitions.settle(each, JobState.FINISHED, now, passed=True)
            elif each.type == JobType.MANUAL:
                job_transitions.block(each, now)
            elif each.type == JobType.TRIGGER:
                await _fire_trigger(session, build, each, now)
            else:
                job_transitions.schedule(session, each, now)
    await derive(session, build, current, now)


async def _fire_trigger(session: AsyncSession, build: Build, trigger: Job, now: datetime) -> None:
    """Create the triggered build; an async trigger passes at once, a sync one waits for it."""
    target = trigger.definition.trigger or ""
    spec = trigger.definition.build
    job_transitions.start_trigger(session, trigger, now)
    organization = await organizations_service.get(session, build.organization_id)
    try:
        pipeline = await pipelines_service.get(
            session, organization_id=organization.id, slug=target
        )
        prepared = await creation.prepare(
            session,
            organization=organization,
            pipeline=pipeline,
            creator_id=build.creator_id,
            author=dict(build.author),
            new=NewBuild(
                commit=spec.get("commit") or "HEAD",
                branch=spec.get("branch") or pipeline.default_branch,
                message=spec.get("message") or build.message,
                env=dict(spec.get("env") or {}),
                meta_data={k: str(v) for k, v in (spec.get("meta_data") or {}).items()},
                source="trigger_job",
                triggered_from_job_id=trigger.id,
            ),
        )
        child = await schedule(session, prepared)
    except (NotFound, ValidationFailed, Unprocessable) as error:
        why = f"Could not trigger {target!r}: {error}"
        trigger.definition = trigger.definition.with_changes(error=why)
        _finish_trigger(session, trigger, passed=False, now=now)
        return
    trigger.triggered_build_id = child.id
    if trigger.definition.async_ or child.state in FINISHED:
        passed = trigger.definition.async_ or _passed(child)
        _finish_trigger(session, trigger, passed=passed, now=now)


def _passed(build: Build) -> bool:
    return build.state == BuildState.PASSED and not (
        build.blocked and build.blocked_state == "failed"
    )


def _finish_trigger(session: AsyncSession, trigger: Job, *, passed: bool, now: datetime) -> None:
    soft_fail = bool(trigger.definition.soft_fail)
    job_transitions.finish_trigger(session, trigger, passed=passed, soft_fail=soft_fail, now=now)


async def derive(session: AsyncSession, build: Build, jobs: list[Job], now: datetime) -> None:
    """The build's state as its (current) jobs make it, and the event of a change."""
    previous = BuildState(build.state)
    if previous in FINISHED:
        return
    if build.started_at is None:
        starts = [each.started_at for each in jobs if each.started_at is not None]
        if starts:
            build.started_at = min(starts)
    new, blocked_state = derived_state(build, jobs, started=build.started_at is not None)
    await _change_to(session, build, new, blocked_state, jobs, now)


async def _change_to(
    session: AsyncSession,
    build: Build,
    new: BuildState,
    blocked_state: str | None,
    jobs: list[Job],
    now: datetime,
) -> None:
    """The build's state as derived (`new`, `blocked_state`), and the events of a change."""
    previous = BuildState(build.state)
    was_blocked = build.blocked
    build.blocked = blocked_state is not None
    if blocked_state is not None:
        build.blocked_state = blocked_state
    if new == previous and build.blocked == was_blocked:
        return
    build.state = new
    if new in (BuildState.RUNNING, BuildState.FAILING) and previous == BuildState.SCHEDULED:
        emit(session, EventName.BUILD_RUNNING, build)
    if new == BuildState.FAILING and previous != BuildState.FAILING:
        build.failing_at = build.failing_at or now
        emit(session, EventName.BUILD_FAILING, build)
        for each in jobs:
            if each.definition.cancel_on_build_failing:
                job_transitions.cancel(session, each, now)
    if new in FINISHED or build.blocked:
        build.finished_at = now if new in FINISHED else None
        emit(session, EventName.BUILD_FINISHED, build)
        await _report_to_trigger(session, build, now)


async def _report_to_trigger(session: AsyncSession, build: Build, now: datetime) -> None:
    """A finished build that a synchronous trigger step waits for settles that step."""
    if build.triggered_from_job_id is None or build.state not in FINISHED:
        return
    trigger = await jobs_service.find(session, build.triggered_from_job_id)
    if trigger is None or trigger.state != JobState.RUNNING:
        return
    _finish_trigger(session, trigger, passed=_passed(build), now=now)
    await advance(session, await _get(session, trigger.build_id))


async def _get(session: AsyncSession, build_id: uuid.UUID) -> Build:
    build = await session.get(Build, build_id)
    if build is None:
        raise NotFound.of("build")
    return build


async def start_job(
    session: AsyncSession,
    *,
    job: Job | JobRef,
    started_at: datetime | None,
    standing: tuple[str, bool] | None = None,
) -> Job | JobRef:
    """`accepted` → `running`. A job already running is answered as started: its agent
    retrying a start whose answer was lost (a restart) would otherwise drop the job.
    `standing`: the build's state and `blocked`, when the caller read them with the job's ref
    (`standing_columns`)."""
    started = job
    if started.state == JobState.RUNNING:
        return started
    jobs: list[Job] | None = None
    if isinstance(started, JobRef):
        if standing is None:
            standing = tuple(
                (await execute_core(session, _STATE, {"build_id": started.build_id})).one()
            )
        state, blocked = standing
        if state in UNDER_WAY and not blocked:
            # Nothing to settle: the job alone changes, in one conditional statement (a job
            # canceled meanwhile is no longer `accepted`, and the statement says so).
            return await job_transitions.start_accepted(session, started, started_at)
        build, loaded, jobs = await lock_with_jobs(session, started)
    else:
        build, loaded = await lock_for(session, started)
    job_transitions.start(session, loaded, started_at)
    # A job starting settles no other job, and a build already under way stays as it is.
    if build.state not in UNDER_WAY or build.blocked:
        await advance(session, build, locked=True, jobs=jobs)
    return loaded


async def finish_job(
    session: AsyncSession,
    *,
    job: Job | JobRef,
    exit_status: int,
    signal: str | None = None,
    signal_reason: str | None = None,
    finished_at: datetime | None = None,
    chunks_failed_count: int = 0,
) -> Job:
    """Record an attempt's outcome; a matching `retry.automatic` rule starts the next attempt,
    else a matching `soft_fail` rule keeps the failure from failing the build. Returns the job
    as recorded."""
    build, loaded, jobs = await lock_with_jobs(session, job)
    if job_transitions.repeats_finish(loaded, exit_status):
        return loaded
    job_transitions.finish(
        session,
        loaded,
        exit_status=exit_status,
        signal=signal,
        signal_reason=signal_reason,
        finished_at=finished_at,
        chunks_failed_count=chunks_failed_count,
    )
    rule = outcomes.matching_retry_rule(loaded)
    if rule is None and loaded.state == JobState.FINISHED and not loaded.passed:
        loaded.soft_failed = outcomes.soft_fail_matches(loaded)
    if rule is not None and loaded.retries_count < rule.limit:
        others = jobs if jobs is not None else await _others(session, build)
        _start_retry(session, build, loaded, others, "automatic")
        jobs = None  # the new attempt is not among them: `advance` reads them again
    elif await _still_running_as_is(session, build, loaded, jobs):
        await session.flush()  # the job's row written (and locked) now, as a count would
        return loaded
    await advance(session, build, locked=True, jobs=jobs)
    # Written now, not at commit: the job's row is locked before what the caller writes next
    # (its agent's row), in the order a count or a list of the jobs used to flush them.
    await session.flush()
    return loaded


async def _still_running_as_is(
    session: AsyncSession, build: Build, finished: Job, jobs: list[Job] | None
) -> bool:
    """Whether `advance` after `finished` would change nothing, told by counting the build's
    jobs by state rather than loading them (`jobs`: all of them, when the caller read them
    already): the build is running, the job succeeded, no job waits on a dependency, and
    another job is still under way. (Most jobs of a build finish so: only the last one, a
    failure, or one that others wait for moves the build.)"""
    if build.state != BuildState.RUNNING or build.blocked or not outcomes.job_succeeded(finished):
        return False
    if jobs is not None:
        counts: dict[str, int] = {}
        for each in jobs:
            if not each.retried:
                counts[each.state] = counts.get(each.state, 0) + 1
    else:
        counts = await jobs_service.state_counts(session, build.id)
    if counts.get(JobState.WAITING):
        return False
    return any(
        count
        for state, count in counts.items()
        if state not in TERMINAL and state not in (JobState.BLOCKED, JobState.WAITING)
    )


RETRYABLE = frozenset({JobState.FINISHED, JobState.TIMED_OUT, JobState.CANCELED, JobState.EXPIRED})


def retry_refusal(
    build: Build, candidate: Job | jobs_service.JobSummary
) -> tuple[type[KitelineError], str] | None:
    """Why `candidate` can't be retried by hand now (its step's `retry.manual`, its state, its
    build's), as the error `retry_job` refuses with and its message, or None when it can: a
    page asks this of every job before offering "Retry"."""
    if build.state in (BuildState.CANCELED, BuildState.CANCELING):
        return Unprocessable, "Jobs from canceled builds cannot be retried"
    if candidate.type != JobType.SCRIPT:
        return BadRequest, "Only command jobs can be retried"
    if candidate.retried:
        return Unprocessable, "This job has already been retried; retry its newest attempt instead"
    manual = candidate.definition.manual_retry or ManualRetry()
    if not manual.allowed:
        reason = manual.reason or "its step does not allow manual retries"
        return Unprocessable, f"This job can't be retried: {reason}"
    if candidate.state not in RETRYABLE or (candidate.passed and not manual.permit_on_passed):
        return BadRequest, "Only failed, timed out or canceled jobs can be retried"
    return None


async def retry_job(session: AsyncSession, *, job: Job) -> Job:
    """A new attempt of the job's step; the old job is marked `retried` and points at it."""
    build, retried = await lock_for(session, job)
    refusal = retry_refusal(build, retried)
    if refusal is not None:
        error, message = refusal
        raise error(message)
    new = _start_retry(session, build, retried, await _others(session, build), "manual")
    await advance(session, build)
    return new


async def _others(session: AsyncSession, build: Build) -> list[Job]:
    return await jobs_service.list_for_build(session, build.id)


def _start_retry(
    session: AsyncSession, build: Build, retried: Job, others: list[Job], retry_type: str
) -> Job:
    """Schedule the next attempt, reopening the build and the steps that gave up on this one
    (they wait again; `advance` settles them by the new attempt's outcome)."""
    new = job_transitions.retry(session, retried, retry_type=retry_type, now=utcnow())
    for other in others:
        if other.state == JobState.WAITING_FAILED:
            job_transitions.wait_again(other)
    reopen(build)
    return new


def reopen(build: Build) -> None:
    """A finished (or blocked) build goes back to running when work is added to it."""
    if build.state in FINISHED:
        build.state = BuildState.RUNNING if build.started_at else BuildState.SCHEDULED
        build.finished_at = None


async def unblock_job(
    session: AsyncSession,
    *,
    job: Job,
    fields: dict[str, Any],
    unblocked_by_id: uuid.UUID | None,
) -> Job:
    """Unblock a block/input step: its field values become build meta-data."""
    if job.type != JobType.MANUAL:
        raise BadRequest("This job type cannot be unblocked")
    build, blocked = await lock_for(session, job)
    if build.state in (BuildState.CANCELED, BuildState.CANCELING):
        raise Unprocessable("Jobs from canceled builds cannot be unblocked")
    if blocked.state != JobState.BLOCKED:
        raise Unprocessable(f"The job's state must be blocked, but it is {blocked.state}")
    values = validate_block_fields(blocked.definition.fields, fields)
    await set_meta_data(session, build.id, values)
    job_transitions.unblock(session, blocked, unblocked_by_id=unblocked_by_id, now=utcnow())
    build.blocked = False
    reopen(build)
    await advance(session, build)
    return blocked


async def time_out_job(session: AsyncSession, *, job: Job) -> None:
    """The agent sees `timing_out` on its next job-state poll; nothing became runnable, so no
    held ping is woken."""
    job_transitions.time_out(job)


async def expire_job(session: AsyncSession, *, job: Job) -> None:
    build, unclaimed = await lock_for(session, job)
    if unclaimed.state != JobState.SCHEDULED:  # taken by an agent after all
        return
    job_transitions.expire(session, unclaimed, utcnow())
    await advance(session, build)


async def lose_jobs_of(session: AsyncSession, *, agent_id: uuid.UUID) -> None:
    """A lost agent's jobs: not yet accepted ones go back to the queue (waking idle agents),
    the others finish with exit status -1, which `retry.automatic` rules can match."""
    await jobs_service.release_assigned(session, agent_id)
    for held in await jobs_service.held_by(session, agent_id):
        if held.state == JobState.ACCEPTED:
            job_transitions.start_lost(held)
        await finish_job(session, job=held, exit_status=-1, signal_reason="agent_lost")


async def cancel_job(session: AsyncSession, *, job: Job) -> None:
    """Cancel one job (an agent being force-stopped, or a job cancel from the API)."""
    build, canceled = await lock_for(session, job)
    if not job_transitions.cancel(session, canceled, utcnow()):
        raise Unprocessable(f"Job can't be canceled because it's {canceled.state}")
    await advance(session, build)


async def cancel(session: AsyncSession, *, build: Build, reason: str | None = None) -> Build:
    """Cancel every unfinished job; jobs on agents wind down (`canceling`) before `canceled`.
    Held pings are woken: a concurrency group's place may have come free."""
    build = await lock(session, build.id)
    if (
        build.state
        not in (
            BuildState.SCHEDULED,
            BuildState.RUNNING,
            BuildState.FAILING,
            BuildState.BLOCKED,
        )
        and not build.blocked
    ):
        raise Unprocessable(f"Build can't be canceled because it's {build.state}")
    now = utcnow()
    build.state = BuildState.CANCELING
    build.blocked = False
    for each in await jobs_service.list_for_build(session, build.id):
        job_transitions.cancel(session, each, now)
    job_transitions.wake_agents(session)
    await advance(session, build)
    if reason is not None:
        build.cancel_reason = reason
    return build


_STATE = select(Build.state, Build.blocked).where(Build.id == bindparam("build_id"))


def standing_columns(build_id: Any) -> tuple[Any, Any]:
    """A build's state and `blocked` as two scalar subqueries on `build_id` (a column of
    another table): the agent API reads them with a job's ref for `start_job(standing=…)`."""
    return (
        select(Build.state).where(Build.id == build_id).scalar_subquery(),
        select(Build.blocked).where(Build.id == build_id).scalar_subquery(),
    )
