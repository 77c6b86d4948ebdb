"""Builds: creating one (REST, GraphQL, the web, code-host webhooks, schedules), adding an
uploaded pipeline's steps to one, rebuilding one.

State changes are builds/transitions.py's; reads shared by REST and GraphQL are
builds/repository.py's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.pipeline import branch_matches
from kiteline.server.builds import creation, locks, repository, transitions
from kiteline.server.builds.creation import NewBuild as NewBuild
from kiteline.server.builds.models import Build
from kiteline.server.builds.states import FINISHED, BuildState
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit import limits
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import Unprocessable, ValidationFailed
from kiteline.server.organizations import service as organizations_service
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines_service
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.users import service as users


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


async def create(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    creator_id: uuid.UUID | None,
    new: NewBuild,
) -> Build:
    """A new build of `pipeline`, `scheduled`, its first steps runnable. An author not given
    (`new.author` None) is its creator's name and email."""
    build, _ = await create_with_jobs(
        session, organization=organization, pipeline=pipeline, creator_id=creator_id, new=new
    )
    return build


async def create_with_jobs(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    creator_id: uuid.UUID | None,
    new: NewBuild,
) -> tuple[Build, list[Job] | None]:
    """`create`, and the new build's jobs as written (its answer is rendered from them); None
    for a large build, whose jobs are let go as soon as written (its answer is read back)."""
    author = new.author
    if author is None:
        creators = await users.get_many(session, {creator_id} if creator_id else set())
        creator = creators.get(creator_id) if creator_id else None
        author = {"name": creator.name, "email": creator.email} if creator is not None else {}
    prepared = await creation.prepare(
        session,
        organization=organization,
        pipeline=pipeline,
        creator_id=creator_id,
        author=author,
        new=new,
    )
    build, jobs = await transitions.schedule_with_jobs(session, prepared)
    if new.source != "trigger_job":
        await _supersede_branch_builds(session, pipeline, build)
    return build, jobs


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
        earlier = await locks.lock(session, build_id)
        if earlier.state in _QUEUED and earlier.started_at is None:
            await transitions.skip(session, earlier, by=build)
        elif earlier.state in _RUNNING:
            reason = f"Canceled by newer build #{build.number}"
            await transitions.cancel(session, build=earlier, reason=reason)


async def apply_upload(
    session: AsyncSession, *, job: Job, definition: PipelineDefinition, replace: bool
) -> list[Job]:
    """Insert an uploaded pipeline's steps right after the uploading job.

    The first wait or block step after the uploader now also waits for the new steps; with
    `replace`, the build's steps after the uploader that have not started are removed first.
    """
    build = await repository.get_by_id(session, job.build_id)
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
    planned = await creation.plan_off_loop_if_large(
        definition, creation.context(build, pipeline, organization), external_keys=keys
    )
    too_many = limits.jobs_over_limit(len(existing) + 1 + len(planned))
    if too_many is not None:
        raise Unprocessable(f"The uploaded pipeline is too large: {too_many}")
    for other in later:
        other.position += len(planned)
    added = await creation.add_jobs(
        session, build, planned, first_position=job.position + 1, now=utcnow()
    )
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
    transitions.reopen(build)
    await transitions.advance(session, build)
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
    meta_data = (await repository.meta_data_for(session, [original.id]))[original.id]
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
