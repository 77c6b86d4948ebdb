"""Builds: creation, the build/job state machine, cancel, and queries.

Every change that can move a build — a job starting or finishing, a cancel — goes through a
function here, which applies the job transition and then `advance`s the build: waiting jobs
whose dependencies are settled become runnable (or `waiting_failed`), and the build's own state
follows from its jobs. Each transition writes its outbox event in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.builds.planner import BuildContext, plan
from kiteline.server.builds.states import FINISHED, FINISHED_FILTER, BuildState
from kiteline.server.events import service as events
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import TERMINAL, UNSUCCESSFUL, JobState, JobType
from kiteline.server.kit.db import after_commit, utcnow
from kiteline.server.kit.errors import BadRequest, NotFound, Unprocessable, ValidationFailed
from kiteline.server.kit.notify import dispatch
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines import service as pipelines_service
from kiteline.server.pipelines.models import Pipeline


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


def _emit_build_event(session: AsyncSession, name: str, build: Build) -> None:
    events.emit(
        session,
        name,
        organization_id=build.organization_id,
        subject_id=build.id,
        data={"build_id": str(build.id), "state": build.state, "blocked": build.blocked},
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
    definition = pipelines_service.parse_configuration(pipeline.configuration)
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
        message=new.message,
        env=new.env,
        author=new.author,
        source=new.source,
        clean_checkout=new.clean_checkout,
        pull_request=new.pull_request,
        creator_id=creator_id,
        rebuilt_from_id=new.rebuilt_from_id,
        pipeline_configuration=pipeline.configuration,
        created_at=now,
        scheduled_at=now,
    )
    context = BuildContext(
        branch=build.branch,
        commit=build.commit,
        message=build.message or "",
        number=number,
        build_id=build.id,
        source=build.source,
        env={**pipeline.env, **new.env},
        pipeline_slug=pipeline.slug,
        pipeline_id=pipeline.id,
        pipeline_repository=pipeline.repository,
        pipeline_default_branch=pipeline.default_branch,
        organization_slug=organization.slug,
        organization_id=organization.id,
    )
    planned = plan(definition, context)
    session.add(build)
    for key, value in new.meta_data.items():
        session.add(BuildMetaData(build_id=build.id, key=key, value=value))
    for position, item in enumerate(planned):
        jobs_service.add(
            session,
            organization_id=organization.id,
            pipeline_id=pipeline.id,
            build_id=build.id,
            position=position,
            step_id=item.step_id,
            step_key=item.step_key,
            type=item.type,
            state=item.state,
            label=item.label,
            command=item.command,
            env=item.env,
            agent_query_rules=item.agent_query_rules,
            depends_on=item.depends_on,
            allow_dependency_failure=item.allow_dependency_failure,
            continue_on_failure=item.continue_on_failure,
            artifact_paths=item.artifact_paths,
            timeout_in_minutes=item.timeout_in_minutes,
            priority=item.priority,
            step=item.step,
            created_at=now,
        )
    await session.flush()
    _emit_build_event(session, "build.scheduled", build)
    await advance(session, build)
    return build


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


async def advance(session: AsyncSession, build: Build) -> None:
    """Settle waiting jobs whose dependencies finished, then derive the build's state."""
    jobs = await jobs_service.list_for_build(session, build.id)
    now = utcnow()
    current = [job for job in jobs if not job.retried]
    by_step: dict[str, list[Job]] = {}
    for job in current:
        by_step.setdefault(str(job.step_id), []).append(job)
    became_runnable = False
    changed = True
    while changed:
        changed = False
        for job in current:
            if job.state != JobState.WAITING:
                continue
            verdict = _dependencies_verdict(job, by_step)
            if verdict is None:
                continue
            changed = True
            if build.state in (BuildState.CANCELING, BuildState.CANCELED):
                job.state = JobState.CANCELED
                job.finished_at = now
            elif not verdict:
                job.state = JobState.WAITING_FAILED
                job.finished_at = now
            elif job.type == JobType.WAITER:
                job.state = JobState.FINISHED
                job.passed = True
                job.finished_at = now
            else:
                jobs_service.make_runnable(job, now)
                jobs_service.emit_job_event(session, "job.scheduled", job)
                became_runnable = True
    if became_runnable:
        after_commit(session, dispatch.notify)
    _derive_build_state(session, build, current, now)


def _step_succeeded(jobs: list[Job]) -> bool | None:
    """None while any attempt of the step is unsettled; else whether it counts as a pass."""
    if any(job.state not in TERMINAL for job in jobs):
        return None
    return all(_job_succeeded(job) for job in jobs)


def _job_succeeded(job: Job) -> bool:
    if job.state in (JobState.SKIPPED, JobState.BROKEN):
        return True
    if job.state in UNSUCCESSFUL:
        return False
    return bool(job.passed or job.soft_failed)


def _dependencies_verdict(job: Job, by_step: dict[str, list[Job]]) -> bool | None:
    ok = True
    for dependency in job.depends_on:
        step_jobs = by_step.get(str(dependency["step_id"]), [])
        succeeded = _step_succeeded(step_jobs)
        if succeeded is None:
            return None
        if not succeeded and not dependency.get("allow_failure"):
            ok = False
    return ok or job.allow_dependency_failure or job.continue_on_failure


def _hard_failed(job: Job) -> bool:
    if job.type == JobType.WAITER or job.state == JobState.WAITING_FAILED:
        return False
    if job.state == JobState.FINISHED:
        return not job.passed and not job.soft_failed
    return job.state in (JobState.TIMED_OUT, JobState.EXPIRED)


def _derive_build_state(
    session: AsyncSession, build: Build, jobs: list[Job], now: datetime
) -> None:
    settled = all(job.state in TERMINAL for job in jobs)
    failed = any(_hard_failed(job) for job in jobs)
    started = build.started_at is not None or any(job.started_at is not None for job in jobs)
    previous = BuildState(build.state)
    if previous in FINISHED:
        return
    if previous == BuildState.CANCELING:
        new = BuildState.CANCELED if settled else BuildState.CANCELING
    elif settled:
        runnable = [job for job in jobs if job.type != JobType.WAITER]
        if not runnable or all(
            job.state in (JobState.SKIPPED, JobState.BROKEN) for job in runnable
        ):
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
    if new == previous:
        return
    build.state = new
    if new in (BuildState.RUNNING, BuildState.FAILING) and previous == BuildState.SCHEDULED:
        _emit_build_event(session, "build.running", build)
    if new == BuildState.FAILING:
        build.failing_at = build.failing_at or now
        _emit_build_event(session, "build.failing", build)
    if new in FINISHED:
        build.finished_at = now
        _emit_build_event(session, "build.finished", build)


async def start_job(session: AsyncSession, job: Job, started_at: datetime | None) -> None:
    jobs_service.start(job, started_at)
    jobs_service.emit_job_event(session, "job.started", job)
    await advance(session, await get_by_id(session, job.build_id))


async def finish_job(
    session: AsyncSession,
    job: Job,
    *,
    exit_status: int,
    signal: str | None = None,
    signal_reason: str | None = None,
    finished_at: datetime | None = None,
    chunks_failed_count: int = 0,
) -> None:
    jobs_service.finish(
        job,
        exit_status=exit_status,
        signal=signal,
        signal_reason=signal_reason,
        finished_at=finished_at,
        chunks_failed_count=chunks_failed_count,
    )
    jobs_service.emit_job_event(session, "job.finished", job)
    await advance(session, await get_by_id(session, job.build_id))


RETRYABLE = frozenset({JobState.FINISHED, JobState.TIMED_OUT, JobState.CANCELED, JobState.EXPIRED})


async def retry_job(
    session: AsyncSession,
    job: Job,
    *,
    retry_type: str = "manual",
    retried_by_id: uuid.UUID | None = None,
) -> Job:
    """A new attempt of the job's step; the old job is marked `retried` and points at it.

    A finished build goes back to running: the new attempt reopens it, and steps that were
    `waiting_failed` on this one wait again for its outcome.
    """
    build = await get_by_id(session, job.build_id)
    if build.state in (BuildState.CANCELED, BuildState.CANCELING):
        raise Unprocessable("Jobs from canceled builds cannot be retried")
    if job.type != JobType.SCRIPT:
        raise BadRequest("Only command jobs can be retried")
    if job.retried:
        raise Unprocessable("This job has already been retried; retry its newest attempt instead")
    manual = (
        job.step.get("retry", {}).get("manual", {})
        if isinstance(job.step.get("retry"), dict)
        else {}
    )
    permit_on_passed = isinstance(manual, dict) and bool(manual.get("permit_on_passed"))
    if job.state not in RETRYABLE or (job.passed and not permit_on_passed):
        raise BadRequest("Only failed, timed out or canceled jobs can be retried")
    new = jobs_service.retry(session, job, retry_type=retry_type)
    now = utcnow()
    for other in await jobs_service.list_for_build(session, build.id):
        if other.state == JobState.WAITING_FAILED:
            other.state = JobState.WAITING
            other.finished_at = None
    if build.state in FINISHED:
        build.state = BuildState.RUNNING if build.started_at else BuildState.SCHEDULED
        build.finished_at = None
    jobs_service.make_runnable(new, now)
    jobs_service.emit_job_event(session, "job.scheduled", new)
    after_commit(session, dispatch.notify)
    await advance(session, build)
    return new


async def cancel_job(session: AsyncSession, job: Job) -> None:
    """Cancel one job (an agent being force-stopped, or a job cancel from the API)."""
    if not jobs_service.cancel(job, utcnow()):
        raise Unprocessable(f"Job can't be canceled because it's {job.state}")
    if job.state == JobState.CANCELED:
        jobs_service.emit_job_event(session, "job.finished", job)
    await advance(session, await get_by_id(session, job.build_id))


async def cancel(session: AsyncSession, build: Build) -> Build:
    """Cancel every unfinished job; jobs on agents wind down (`canceling`) before `canceled`."""
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
        if jobs_service.cancel(job, now) and job.state == JobState.CANCELED:
            jobs_service.emit_job_event(session, "job.finished", job)
    after_commit(session, dispatch.notify)
    await advance(session, build)
    return build


async def get_by_id(session: AsyncSession, build_id: uuid.UUID) -> Build:
    build = await session.get(Build, build_id)
    if build is None:
        raise NotFound.of("build")
    return build


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


async def list_builds(
    session: AsyncSession,
    *,
    organization_ids: Sequence[uuid.UUID],
    pipeline_id: uuid.UUID | None = None,
    where: BuildFilter | None = None,
    offset: int,
    limit: int,
) -> tuple[list[Build], int]:
    """Newest first; returns one page and the total count for pagination links."""
    query = select(Build).where(Build.organization_id.in_(organization_ids))
    if pipeline_id is not None:
        query = query.where(Build.pipeline_id == pipeline_id)
    query = _apply_filter(query, where or BuildFilter())
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Build.created_at.desc(), Build.number.desc()).offset(offset).limit(limit)
    )
    return list(rows), total


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


async def set_meta_data(session: AsyncSession, build_id: uuid.UUID, items: dict[str, str]) -> None:
    """Set keys on a build (all or nothing); keys and values must not be blank."""
    for key, value in items.items():
        if not key.strip():
            raise ValidationFailed.field("key", "can't be blank")
        if not str(value).strip():
            raise ValidationFailed.field("value", f"can't be blank (key {key!r})")
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
