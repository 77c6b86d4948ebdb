"""Builds: creation, the build/job state machine, cancel, and queries.

Every change that can move a build — a job starting or finishing, a cancel — goes through a
function here, which applies the job transition and then `advance`s the build: waiting jobs
whose dependencies are settled become runnable (or `waiting_failed`), and the build's own state
follows from its jobs. Each transition writes its outbox event in the same transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import Row, Select, bindparam, func, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.pipeline import branch_matches
from kiteline.server.builds import outcomes
from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.builds.planner import BuildContext, PlannedJob, plan
from kiteline.server.builds.saved_steps import saved_steps_env
from kiteline.server.builds.states import FINISHED, FINISHED_FILTER, BuildState
from kiteline.server.events import service as events
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.service import JobRef
from kiteline.server.jobs.states import TERMINAL, JobState, JobType
from kiteline.server.kit import limits
from kiteline.server.kit.db import after_commit, execute_core, utcnow
from kiteline.server.kit.errors import (
    BadRequest,
    KitelineError,
    NotFound,
    Unprocessable,
    ValidationFailed,
)
from kiteline.server.kit.ids import INT32_MAX, parse_int
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.kit.notify import dispatch
from kiteline.server.kit.text import check_plain, check_plain_keys
from kiteline.server.organizations import service as organizations_service
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines import service as pipelines_service
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.users.models import User


@dataclass(frozen=True)
class NewBuild:
    commit: str
    branch: str
    message: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    meta_data: dict[str, str] = field(default_factory=dict)
    author: dict[str, Any] = field(default_factory=dict)
    source: str = "api"
    clean_checkout: bool = False
    pull_request: dict[str, Any] | None = None
    rebuilt_from_id: uuid.UUID | None = None
    triggered_from_job_id: uuid.UUID | None = None
    tag: str | None = None


def environment_from_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=value` strings (GraphQL's `env`, the web's "Environment Variables" lines) as a
    build's env (a later key wins), or 422 on the `env` field naming the first malformed one."""
    environment = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValidationFailed.field("env", f"must be KEY=value strings, got {pair!r}")
        environment[key] = value
    return environment


def _emit_build_event(session: AsyncSession, name: str, build: Build) -> None:
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


async def create(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    creator_id: uuid.UUID | None,
    new: NewBuild,
) -> Build:
    if pipeline.archived_at is not None:
        raise Unprocessable("Builds can't be created for an archived pipeline")
    if not new.commit.strip():
        raise ValidationFailed.field("commit", "can't be blank")
    if not new.branch.strip():
        raise ValidationFailed.field("branch", "can't be blank")
    check_plain("branch", new.branch.strip())
    check_plain("commit", new.commit.strip())
    check_plain_keys("meta_data", new.meta_data)
    limits.check_build_message(new.message)
    limits.check_env(new.env)
    limits.check_meta_data(new.meta_data)
    steps_env = saved_steps_env(
        commit=new.commit.strip(),
        branch=new.branch.strip(),
        message=new.message,
        pull_request=new.pull_request,
        pipeline=pipeline,
        organization=organization,
    )
    definition = await pipelines_service.parse_configuration(pipeline.configuration, env=steps_env)
    number = await pipelines_service.allocate_build_number(session, pipeline.id)
    now = utcnow()
    build = Build(
        id=uuid.uuid4(),
        organization_id=organization.id,
        pipeline_id=pipeline.id,
        number=number,
        state=BuildState.SCHEDULED,
        commit=new.commit.strip(),
        branch=new.branch.strip(),
        tag=new.tag,
        message=new.message,
        env=new.env,
        author=new.author,
        source=new.source,
        clean_checkout=new.clean_checkout,
        pull_request=new.pull_request,
        creator_id=creator_id,
        rebuilt_from_id=new.rebuilt_from_id,
        triggered_from_job_id=new.triggered_from_job_id,
        pipeline_configuration=pipeline.configuration,
        created_at=now,
        scheduled_at=now,
    )
    planned = await _plan_off_loop_if_large(definition, _context(build, pipeline, organization))
    too_many = limits.jobs_over_limit(len(planned))
    if too_many is not None:
        raise ValidationFailed.field("configuration", too_many)
    session.add(build)
    for key, value in new.meta_data.items():
        session.add(BuildMetaData(build_id=build.id, key=key, value=value))
    await session.flush()
    added = await _add_jobs(session, build, planned, first_position=0, now=now)
    _emit_build_event(session, "build.scheduled", build)
    # Nobody else sees the build before this transaction commits: no lock to take, and its
    # jobs are the ones just added.
    await advance(session, build, locked=True, jobs=added)
    if new.source != "trigger_job":
        await _supersede_branch_builds(session, pipeline, build)
    return build


#: A build nobody has started yet: `skip_queued_branch_builds` skips it.
_QUEUED = (BuildState.SCHEDULED,)
#: A build under way: `cancel_running_branch_builds` cancels it.
_RUNNING = (BuildState.RUNNING, BuildState.FAILING)


async def _supersede_branch_builds(session: AsyncSession, pipeline: Pipeline, build: Build) -> None:
    """Buildkite's "skip queued intermediate builds" and "cancel intermediate builds": a new
    build on a branch skips that branch's builds still waiting to start, and cancels those
    running, when the pipeline says so and the branch passes the setting's branch filter."""
    settings = pipeline.settings
    wanted: list[BuildState] = []
    for enabled, pattern, states in (
        ("skip_queued_branch_builds", "skip_queued_branch_builds_filter", _QUEUED),
        ("cancel_running_branch_builds", "cancel_running_branch_builds_filter", _RUNNING),
    ):
        if settings.get(enabled) and branch_matches([settings.get(pattern) or ""], build.branch):
            wanted.extend(states)
    if not wanted:
        return
    older = await session.scalars(
        select(Build.id).where(
            Build.pipeline_id == pipeline.id,
            Build.branch == build.branch,
            Build.id != build.id,
            Build.number < build.number,
            Build.state.in_(wanted),
        )
    )
    for build_id in list(older):
        earlier = await lock(session, build_id)
        if earlier.state in _QUEUED and earlier.started_at is None:
            await _skip(session, earlier, by=build)
        elif earlier.state in _RUNNING:
            canceled = await cancel(session, earlier)
            canceled.cancel_reason = f"Canceled by newer build #{build.number}"


async def _skip(session: AsyncSession, build: Build, *, by: Build) -> None:
    """Skip a build no agent has started: its jobs are skipped (or canceled, when an agent
    holds one) and it finishes `skipped`."""
    now = utcnow()
    for job in await jobs_service.list_for_build(session, build.id):
        if job.state in TERMINAL:
            continue
        if job.state in (JobState.PENDING, JobState.WAITING, JobState.SCHEDULED, JobState.BLOCKED):
            _settle(job, JobState.SKIPPED, now, passed=False)
        else:
            _cancel_one(session, job, now)
    build.state = BuildState.SKIPPED
    build.blocked = False
    build.finished_at = now
    build.cancel_reason = f"Skipped by newer build #{by.number}"
    _emit_build_event(session, "build.finished", build)


def _context(build: Build, pipeline: Pipeline, organization: Organization) -> BuildContext:
    return BuildContext(
        branch=build.branch,
        commit=build.commit,
        message=build.message or "",
        number=build.number,
        build_id=build.id,
        source=build.source,
        env={**pipeline.env, **build.env},
        pipeline_slug=pipeline.slug,
        pipeline_id=pipeline.id,
        pipeline_repository=pipeline.repository,
        pipeline_default_branch=pipeline.default_branch,
        organization_slug=organization.slug,
        organization_id=organization.id,
        tag=build.tag,
    )


#: Pipelines of more steps than this are planned in a thread, off the event loop.
LARGE_PLAN = 200


async def _plan_off_loop_if_large(
    definition: PipelineDefinition,
    context: BuildContext,
    *,
    external_keys: dict[str, list[uuid.UUID]] | None = None,
) -> list[PlannedJob]:
    if definition.step_count > LARGE_PLAN:
        return await asyncio.to_thread(plan, definition, context, external_keys=external_keys)
    return plan(definition, context, external_keys=external_keys)


#: Jobs written per flush when a build gets many: each flush's work on the event loop stays
#: short, and other requests are served between them.
JOBS_PER_FLUSH = 250


async def _add_jobs(
    session: AsyncSession,
    build: Build,
    planned: list[PlannedJob],
    *,
    first_position: int,
    now: datetime,
) -> list[Job]:
    """The planned jobs, added and flushed `JOBS_PER_FLUSH` at a time."""
    names = [item.name for item in dataclasses.fields(PlannedJob)]
    added: list[Job] = []
    for offset, item in enumerate(planned):
        added.append(
            jobs_service.add(
                session,
                organization_id=build.organization_id,
                pipeline_id=build.pipeline_id,
                build_id=build.id,
                position=first_position + offset,
                created_at=now,
                # Not dataclasses.asdict: it deep-copies, and the plan is this build's alone.
                **{name: getattr(item, name) for name in names},
            )
        )
        if (offset + 1) % JOBS_PER_FLUSH == 0:
            await session.flush()
    await session.flush()
    return added


async def apply_upload(
    session: AsyncSession, job: Job, definition: PipelineDefinition, *, replace: bool
) -> list[Job]:
    """Insert an uploaded pipeline's steps right after the uploading job.

    The first wait or block step after the uploader now also waits for the new steps; with
    `replace`, the build's steps after the uploader that have not started are removed first.
    """
    build = await get_by_id(session, job.build_id)
    if build.state in FINISHED and not build.blocked:
        raise Unprocessable(f"Steps can't be added to a build that is {build.state}")
    pipeline = await pipelines_service.get_by_id(session, build.pipeline_id)
    organization = await organizations_service.get(session, build.organization_id)
    existing = [j for j in await jobs_service.list_for_build(session, build.id) if j.id != job.id]
    later = [j for j in existing if j.position > job.position]
    if replace:
        for stale in [j for j in later if j.state in (JobState.WAITING, JobState.PENDING)]:
            await session.delete(stale)
            existing.remove(stale)
            later.remove(stale)
    keys: dict[str, list[uuid.UUID]] = {}
    for other in [*existing, job]:
        if other.step_key and other.step_id not in keys.get(other.step_key, []):
            keys.setdefault(other.step_key, []).append(other.step_id)
    planned = await _plan_off_loop_if_large(
        definition, _context(build, pipeline, organization), external_keys=keys
    )
    too_many = limits.jobs_over_limit(len(existing) + 1 + len(planned))
    if too_many is not None:
        raise Unprocessable(f"The uploaded pipeline is too large: {too_many}")
    for other in later:
        other.position += len(planned)
    added = await _add_jobs(session, build, planned, first_position=job.position + 1, now=utcnow())
    barrier = next(
        (
            j
            for j in sorted(later, key=lambda j: j.position)
            if j.type in (JobType.WAITER, JobType.MANUAL) and j.state == JobState.WAITING
        ),
        None,
    )
    if barrier is not None:
        new_steps = list(dict.fromkeys(str(item.step_id) for item in planned))
        barrier.depends_on = [
            *barrier.depends_on,
            *({"step_id": step_id, "allow_failure": False} for step_id in new_steps),
        ]
    await session.flush()
    _reopen(build)
    await advance(session, build)
    return added


async def rebuild(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    original: Build,
    creator_id: uuid.UUID | None,
) -> Build:
    """A new build with the original's commit, branch, message, env, meta-data and PR data."""
    if pipeline.settings.get("allow_rebuilds") is False:
        raise Unprocessable("Rebuilds are disabled for this pipeline")
    meta_data = (await meta_data_for(session, [original.id]))[original.id]
    return await create(
        session,
        organization=organization,
        pipeline=pipeline,
        creator_id=creator_id,
        new=NewBuild(
            commit=original.commit,
            branch=original.branch,
            message=original.message,
            env=dict(original.env),
            meta_data=meta_data,
            author=dict(original.author),
            clean_checkout=original.clean_checkout,
            pull_request=original.pull_request,
            rebuilt_from_id=original.id,
        ),
    )


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
    current = [job for job in jobs if not job.retried]
    by_step: dict[str, list[Job]] = {}
    for job in current:
        by_step.setdefault(str(job.step_id), []).append(job)
    changed = True
    settled = 0
    while changed:
        changed = False
        for job in current:
            if job.state != JobState.WAITING:
                continue
            verdict = outcomes.dependencies_verdict(job, by_step)
            if verdict is None:
                continue
            changed = True
            settled += 1
            if settled % JOBS_PER_FLUSH == 0:
                await session.flush()  # a large build's changes, written a slice at a time
            if build.state in (BuildState.CANCELING, BuildState.CANCELED):
                _settle(job, JobState.CANCELED, now, passed=False)
            elif not verdict:
                _settle(job, JobState.WAITING_FAILED, now, passed=False)
            elif job.type == JobType.WAITER:
                _settle(job, JobState.FINISHED, now, passed=True)
            elif job.type == JobType.MANUAL:
                job.state = JobState.BLOCKED
                job.runnable_at = now
            elif job.type == JobType.TRIGGER:
                await _fire_trigger(session, build, job, now)
            else:
                jobs_service.make_runnable(job, now)
                jobs_service.emit_job_event(session, "job.scheduled", job)
                after_commit(session, dispatch.notify)
    await _derive_build_state(session, build, current, now)


def _settle(job: Job, state: JobState, now: datetime, *, passed: bool) -> None:
    job.state = state
    job.passed = passed
    job.finished_at = now


async def _fire_trigger(session: AsyncSession, build: Build, job: Job, now: datetime) -> None:
    """Create the triggered build; an async trigger passes at once, a sync one waits for it."""
    target = job.definition.get("trigger", "")
    spec = job.definition.get("build", {})
    job.state = JobState.RUNNING
    job.started_at = now
    jobs_service.emit_job_event(session, "job.started", job)
    organization = await organizations_service.get(session, build.organization_id)
    try:
        pipeline = await pipelines_service.get(
            session, organization_id=organization.id, slug=target
        )
        child = await create(
            session,
            organization=organization,
            pipeline=pipeline,
            creator_id=build.creator_id,
            new=NewBuild(
                commit=spec.get("commit") or "HEAD",
                branch=spec.get("branch") or pipeline.default_branch,
                message=spec.get("message") or build.message,
                env=dict(spec.get("env") or {}),
                meta_data={k: str(v) for k, v in (spec.get("meta_data") or {}).items()},
                author=dict(build.author),
                source="trigger_job",
                triggered_from_job_id=job.id,
            ),
        )
    except (NotFound, ValidationFailed, Unprocessable) as error:
        job.definition = {**job.definition, "error": f"Could not trigger {target!r}: {error}"}
        _finish_trigger(session, job, passed=False, now=now)
        return
    job.triggered_build_id = child.id
    if job.definition.get("async") or child.state in FINISHED:
        _finish_trigger(session, job, passed=job.definition.get("async") or _passed(child), now=now)


def _passed(build: Build) -> bool:
    return build.state == BuildState.PASSED and not (
        build.blocked and build.blocked_state == "failed"
    )


def _finish_trigger(session: AsyncSession, job: Job, *, passed: bool, now: datetime) -> None:
    job.state = JobState.FINISHED
    job.passed = passed
    job.exit_status = 0 if passed else 1
    job.soft_failed = not passed and bool(job.definition.get("soft_fail"))
    job.finished_at = now
    jobs_service.emit_job_event(session, "job.finished", job)


async def _derive_build_state(
    session: AsyncSession, build: Build, jobs: list[Job], now: datetime
) -> None:
    previous = BuildState(build.state)
    if previous in FINISHED:
        return
    blocked = [job for job in jobs if job.state == JobState.BLOCKED]
    # Waiting jobs are not progress: when all that is left waits, it waits behind a block.
    active = [
        job
        for job in jobs
        if job.state not in TERMINAL and job.state not in (JobState.BLOCKED, JobState.WAITING)
    ]
    failed = any(outcomes.hard_failed(job) for job in jobs)
    started = build.started_at is not None or any(job.started_at is not None for job in jobs)
    was_blocked = build.blocked
    build.blocked = False
    if previous == BuildState.CANCELING:
        new = BuildState.CANCELING if active or blocked else BuildState.CANCELED
    elif not active and blocked:
        # Waiting for a person: the build keeps the state its block step asks for.
        build.blocked = True
        build.blocked_state = str(blocked[0].definition.get("blocked_state") or "passed")
        new = BuildState.FAILED if failed else BuildState(build.blocked_state)
    elif not active:
        runnable = [job for job in jobs if job.type != JobType.WAITER]
        if all(job.state in (JobState.SKIPPED, JobState.BROKEN) for job in runnable):
            new = BuildState.NOT_RUN
        elif failed:
            new = BuildState.FAILED
        elif any(job.state == JobState.CANCELED for job in runnable):
            new = BuildState.CANCELED  # a job was canceled on its own (e.g. its agent stopped)
        else:
            new = BuildState.PASSED
    elif failed:
        new = BuildState.FAILING
    elif started:
        new = BuildState.RUNNING
    else:
        new = BuildState.SCHEDULED
    if started and build.started_at is None:
        build.started_at = min(job.started_at for job in jobs if job.started_at is not None)
    if new == previous and build.blocked == was_blocked:
        return
    build.state = new
    if new in (BuildState.RUNNING, BuildState.FAILING) and previous == BuildState.SCHEDULED:
        _emit_build_event(session, "build.running", build)
    if new == BuildState.FAILING and previous != BuildState.FAILING:
        build.failing_at = build.failing_at or now
        _emit_build_event(session, "build.failing", build)
        await _cancel_on_build_failing(session, jobs, now)
    if new in FINISHED or build.blocked:
        build.finished_at = now if new in FINISHED else None
        _emit_build_event(session, "build.finished", build)
        await _report_to_trigger(session, build, now)


async def _cancel_on_build_failing(session: AsyncSession, jobs: list[Job], now: datetime) -> None:
    for job in jobs:
        if job.definition.get("cancel_on_build_failing"):
            _cancel_one(session, job, now)


def _cancel_one(session: AsyncSession, job: Job, now: datetime) -> bool:
    """Cancel a job if its state allows; one that never reached an agent is finished now."""
    if not jobs_service.cancel(job, now):
        return False
    if job.state == JobState.CANCELED:
        jobs_service.emit_job_event(session, "job.finished", job)
    return True


async def _report_to_trigger(session: AsyncSession, build: Build, now: datetime) -> None:
    """A finished build that a synchronous trigger step waits for settles that step."""
    if build.triggered_from_job_id is None or build.state not in FINISHED:
        return
    job = await session.get(Job, build.triggered_from_job_id)
    if job is None or job.state != JobState.RUNNING:
        return
    _finish_trigger(session, job, passed=_passed(build), now=now)
    await advance(session, await get_by_id(session, job.build_id))


async def start_job(
    session: AsyncSession, job: Job | JobRef, started_at: datetime | None
) -> Job | JobRef:
    """`accepted` → `running`. A job already running is answered as started: its agent
    retrying a start whose answer was lost (a restart) would otherwise drop the job."""
    if job.state == JobState.RUNNING:
        return job
    if isinstance(job, JobRef):
        build_now = (await execute_core(session, _STATE, {"build_id": job.build_id})).one()
        if build_now.state in UNDER_WAY and not build_now.blocked:
            # Nothing to settle: the job alone changes, in one conditional statement (a job
            # canceled meanwhile is no longer `accepted`, and the statement says so).
            running = await jobs_service.start_accepted(
                session, job, jobs_service.reported_time(started_at, now=utcnow())
            )
            jobs_service.emit_job_event(session, "job.started", running)
            return running
    build, started = await lock_for(session, job)
    jobs_service.start(started, started_at)
    jobs_service.emit_job_event(session, "job.started", started)
    # A job starting settles no other job, and a build already under way stays as it is.
    if build.state not in UNDER_WAY or build.blocked:
        await advance(session, build, locked=True)
    return started


async def finish_job(
    session: AsyncSession,
    job: Job | JobRef,
    *,
    exit_status: int,
    signal: str | None = None,
    signal_reason: str | None = None,
    finished_at: datetime | None = None,
    chunks_failed_count: int = 0,
) -> Job:
    """Record an attempt's outcome; a matching `retry.automatic` rule starts the next attempt,
    else a matching `soft_fail` rule keeps the failure from failing the build. Returns the job
    as recorded."""
    build, job = await lock_for(session, job)
    if jobs_service.repeats_finish(job, exit_status):
        return job
    jobs_service.finish(
        job,
        exit_status=exit_status,
        signal=signal,
        signal_reason=signal_reason,
        finished_at=finished_at,
        chunks_failed_count=chunks_failed_count,
    )
    rule = outcomes.matching_retry_rule(job)
    if rule is None and job.state == JobState.FINISHED and not job.passed:
        job.soft_failed = outcomes.soft_fail_matches(job)
    jobs_service.emit_job_event(session, "job.finished", job)
    if rule is not None and job.retries_count < int(rule.get("limit", 2)):
        await _start_retry(session, build, job, retry_type="automatic")
    elif await _still_running_as_is(session, build, job):
        return job
    await advance(session, build, locked=True)
    return job


async def _still_running_as_is(session: AsyncSession, build: Build, job: Job) -> bool:
    """Whether `advance` after `job` finished would change nothing, told by counting the
    build's jobs by state rather than loading them: the build is running, the job succeeded,
    no job waits on a dependency, and another job is still under way. (Most jobs of a build
    finish so: only the last one, a failure, or one that others wait for moves the build.)"""
    if build.state != BuildState.RUNNING or build.blocked or not outcomes.job_succeeded(job):
        return False
    rows = await session.execute(_STATE_COUNTS, {"build_id": build.id})
    counts: dict[str, int] = {state: count for state, count in rows}
    if counts.get(JobState.WAITING):
        return False
    return any(
        count
        for state, count in counts.items()
        if state not in TERMINAL and state not in (JobState.BLOCKED, JobState.WAITING)
    )


_STATE_COUNTS = (
    select(Job.state, func.count())
    .where(Job.build_id == bindparam("build_id"), Job.retried.is_(False))
    .group_by(Job.state)
)


RETRYABLE = frozenset({JobState.FINISHED, JobState.TIMED_OUT, JobState.CANCELED, JobState.EXPIRED})


def retry_refusal(
    build: Build, job: Job | jobs_service.JobSummary
) -> tuple[type[KitelineError], str] | None:
    """Why `job` can't be retried by hand now (its step's `retry.manual`, its state, its
    build's), as the error `retry_job` refuses with and its message, or None when it can: a
    page asks this of every job before offering "Retry"."""
    if build.state in (BuildState.CANCELED, BuildState.CANCELING):
        return Unprocessable, "Jobs from canceled builds cannot be retried"
    if job.type != JobType.SCRIPT:
        return BadRequest, "Only command jobs can be retried"
    if job.retried:
        return Unprocessable, "This job has already been retried; retry its newest attempt instead"
    manual = job.definition.get("manual_retry") or {}
    if manual.get("allowed") is False:
        reason = manual.get("reason") or "its step does not allow manual retries"
        return Unprocessable, f"This job can't be retried: {reason}"
    if job.state not in RETRYABLE or (job.passed and not manual.get("permit_on_passed")):
        return BadRequest, "Only failed, timed out or canceled jobs can be retried"
    return None


async def retry_job(session: AsyncSession, job: Job) -> Job:
    """A new attempt of the job's step; the old job is marked `retried` and points at it."""
    build, job = await lock_for(session, job)
    refusal = retry_refusal(build, job)
    if refusal is not None:
        error, message = refusal
        raise error(message)
    new = await _start_retry(session, build, job, retry_type="manual")
    await advance(session, build)
    return new


async def _start_retry(session: AsyncSession, build: Build, job: Job, *, retry_type: str) -> Job:
    """Schedule the next attempt, reopening the build and the steps that gave up on this one
    (they wait again; `advance` settles them by the new attempt's outcome)."""
    new = jobs_service.retry(session, job, retry_type=retry_type)
    for other in await jobs_service.list_for_build(session, build.id):
        if other.state == JobState.WAITING_FAILED:
            other.state = JobState.WAITING
            other.finished_at = None
            other.passed = None
    _reopen(build)
    jobs_service.make_runnable(new, utcnow())
    jobs_service.emit_job_event(session, "job.scheduled", new)
    after_commit(session, dispatch.notify)
    return new


def _reopen(build: Build) -> None:
    """A finished (or blocked) build goes back to running when work is added to it."""
    if build.state in FINISHED:
        build.state = BuildState.RUNNING if build.started_at else BuildState.SCHEDULED
        build.finished_at = None


async def unblock_job(
    session: AsyncSession,
    job: Job,
    *,
    fields: dict[str, Any],
    unblocked_by_id: uuid.UUID | None,
) -> Job:
    """Unblock a block/input step: its field values become build meta-data."""
    if job.type != JobType.MANUAL:
        raise BadRequest("This job type cannot be unblocked")
    build, job = await lock_for(session, job)
    if build.state in (BuildState.CANCELED, BuildState.CANCELING):
        raise Unprocessable("Jobs from canceled builds cannot be unblocked")
    if job.state != JobState.BLOCKED:
        raise Unprocessable(f"The job's state must be blocked, but it is {job.state}")
    values = validate_block_fields(job.definition.get("fields", []), fields)
    await set_meta_data(session, build.id, values)
    now = utcnow()
    job.state = JobState.UNBLOCKED
    job.unblocked_at = now
    job.unblocked_by_id = unblocked_by_id
    job.finished_at = now
    job.passed = True
    jobs_service.emit_job_event(session, "job.activated", job)
    build.blocked = False
    _reopen(build)
    await advance(session, build)
    return job


def validate_block_fields(
    definitions: list[dict[str, Any]], given: dict[str, Any]
) -> dict[str, str]:
    """Field values as meta-data strings: defaults applied, required ones present, select values
    among the options (several joined by newlines), text matching its `format`."""
    errors: list[dict[str, str]] = []
    values: dict[str, str] = {}
    for spec in definitions:
        key = spec["key"]
        value = given.get(key, spec.get("default"))
        if value is None or value == "" or value == []:
            if spec.get("required", True):
                errors.append({"field": key, "code": "is required"})
            continue
        if spec.get("type") == "select":
            chosen = value if isinstance(value, list) else str(value).split("\n")
            allowed = {str(option["value"]) for option in spec.get("options", [])}
            if not spec.get("multiple") and len(chosen) > 1:
                errors.append({"field": key, "code": "takes only one value"})
            unknown = [str(v) for v in chosen if str(v) not in allowed]
            if unknown:
                errors.append({"field": key, "code": f"{unknown[0]!r} is not one of the options"})
            values[key] = "\n".join(str(v) for v in chosen)
        else:
            text = str(value)
            pattern = spec.get("format")
            if pattern and re.fullmatch(pattern, text) is None:
                errors.append({"field": key, "code": f"must match the format {pattern}"})
            values[key] = text
    if errors:
        raise ValidationFailed(errors)
    return values


async def time_out_job(session: AsyncSession, job: Job) -> None:
    """The agent sees `timing_out` on its next job-state poll; nothing became runnable, so no
    held ping is woken."""
    jobs_service.time_out(job)


async def expire_job(session: AsyncSession, job: Job) -> None:
    build, job = await lock_for(session, job)
    if job.state != JobState.SCHEDULED:  # taken by an agent after all
        return
    jobs_service.expire(job, utcnow())
    jobs_service.emit_job_event(session, "job.finished", job)
    await advance(session, build)


async def lose_jobs_of(session: AsyncSession, agent_id: uuid.UUID) -> None:
    """A lost agent's jobs: not yet accepted ones go back to the queue, the others finish with
    exit status -1, which `retry.automatic` rules can match."""
    await jobs_service.release_assigned(session, agent_id)
    for job in await jobs_service.held_by(session, agent_id):
        if job.state == JobState.ACCEPTED:
            jobs_service.start(job, None)
        await finish_job(session, job, exit_status=-1, signal_reason="agent_lost")


async def cancel_job(session: AsyncSession, job: Job) -> None:
    """Cancel one job (an agent being force-stopped, or a job cancel from the API)."""
    build, job = await lock_for(session, job)
    if not _cancel_one(session, job, utcnow()):
        raise Unprocessable(f"Job can't be canceled because it's {job.state}")
    await advance(session, build)


async def cancel(session: AsyncSession, build: Build) -> Build:
    """Cancel every unfinished job; jobs on agents wind down (`canceling`) before `canceled`."""
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
    for job in await jobs_service.list_for_build(session, build.id):
        _cancel_one(session, job, now)
    after_commit(session, dispatch.notify)
    await advance(session, build)
    return build


_STATE = select(Build.state, Build.blocked).where(Build.id == bindparam("build_id"))


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


async def lock_for(session: AsyncSession, job: Job | JobRef) -> tuple[Build, Job]:
    """Lock the job's build before changing the job, then (re-)read the job: it may have been
    changed (canceled, timed out) since it was looked at. A loaded `Job` is refreshed in place."""
    build = await lock(session, job.build_id)
    current = await session.get(Job, job.id, populate_existing=True)
    if current is None:
        raise NotFound.of("job")
    return build, current


async def commit_was_built(session: AsyncSession, *, pipeline_id: uuid.UUID, commit: str) -> bool:
    found = await session.scalar(
        select(Build.id).where(Build.pipeline_id == pipeline_id, Build.commit == commit).limit(1)
    )
    return found is not None


async def get_by_id(session: AsyncSession, build_id: uuid.UUID) -> Build:
    build = await session.get(Build, build_id)
    if build is None:
        raise NotFound.of("build")
    return build


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


def _apply_filter(query: Select[Any], where: BuildFilter) -> Select[Any]:
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


async def counts_for_pipelines(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PipelineCounts]:
    """The live build and job counts REST shows on a pipeline, for many pipelines at once."""
    if not pipeline_ids:
        return {}
    build_rows = await session.execute(
        select(Build.pipeline_id, Build.state, func.count())
        .where(
            Build.pipeline_id.in_(pipeline_ids),
            Build.state.in_([BuildState.SCHEDULED, BuildState.RUNNING, BuildState.FAILING]),
        )
        .group_by(Build.pipeline_id, Build.state)
    )
    job_counts = await jobs_service.active_counts_by_pipeline(session, pipeline_ids)
    tallies: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in pipeline_ids}
    for pipeline_id, state, count in build_rows:
        key = "scheduled_builds_count" if state == BuildState.SCHEDULED else "running_builds_count"
        tallies[pipeline_id][key] = tallies[pipeline_id].get(key, 0) + count
    for pipeline_id, counts in job_counts.items():
        for bucket, count in counts.items():
            tallies[pipeline_id][f"{bucket}_jobs_count"] = count
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


async def set_meta_data(session: AsyncSession, build_id: uuid.UUID, items: dict[str, str]) -> None:
    """Set keys on a build (all or nothing); keys and values must not be blank."""
    limits.check_meta_data(items)
    for key, value in items.items():
        if not key.strip():
            raise ValidationFailed.field("key", "can't be blank")
        check_plain("key", key)
        if not str(value).strip():
            raise ValidationFailed.field("value", f"can't be blank (key {key!r})")
    # Build JSON shows the meta-data: a new build revision says a cached rendering is stale.
    # The build row first, as every writer locks a build before what hangs off it.
    await session.execute(
        update(Build)
        .where(Build.id == build_id)
        .values(revision=Build.revision + 1)
        .execution_options(synchronize_session=False)
    )
    for key, value in items.items():
        row = await session.get(BuildMetaData, (build_id, key))
        if row is None:
            session.add(BuildMetaData(build_id=build_id, key=key, value=str(value)))
        else:
            row.value = str(value)
    await session.flush()


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
    clause = _apply_filter(select(Build), where).whereclause
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


def jobs_of_builds_finished_before(cutoff: datetime) -> Select[uuid.UUID]:
    """The ids of the jobs of builds that finished before `cutoff`, as a subquery (retention)."""
    return select(Job.id).where(Job.build_id.in_(finished_before(cutoff)))
