"""A new build made ready to be written: its fields checked, its pipeline's steps parsed and
planned into jobs, its number allocated. builds/transitions.py writes it (`schedule`)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.server.builds.models import Build
from kiteline.server.builds.planner import BuildContext, plan
from kiteline.server.builds.saved_steps import saved_steps_env
from kiteline.server.builds.states import BuildState
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.planned import PlannedJob
from kiteline.server.jobs.service import Job
from kiteline.server.kit import collector, limits
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import Unprocessable, ValidationFailed
from kiteline.server.kit.slices import pause_if_due
from kiteline.server.kit.text import check_plain, check_plain_keys
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines_service
from kiteline.server.pipelines.service import Pipeline


@dataclass(frozen=True)
class NewBuild:
    """What a build is asked for with. `author` None: its creator's name and email (what
    REST and GraphQL do when a create names no author)."""

    commit: str
    branch: str
    message: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    meta_data: dict[str, str] = field(default_factory=dict)
    author: dict[str, Any] | None = field(default_factory=dict)
    source: str = "api"
    clean_checkout: bool = False
    pull_request: dict[str, Any] | None = None
    rebuilt_from_id: uuid.UUID | None = None
    triggered_from_job_id: uuid.UUID | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A build not yet written, with its planned jobs and meta-data."""

    build: Build
    jobs: list[PlannedJob]
    meta_data: dict[str, str]


async def prepare(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    creator_id: uuid.UUID | None,
    author: dict[str, Any],
    new: NewBuild,
) -> Prepared:
    """Check `new`, parse and plan the pipeline's steps, allocate the build's number: 422 for
    bad input (nothing is written then but the number)."""
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
        author=author,
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
    planned = await plan_off_loop_if_large(definition, context(build, pipeline, organization))
    too_many = limits.jobs_over_limit(len(planned))
    if too_many is not None:
        raise ValidationFailed.field("configuration", too_many)
    return Prepared(build, planned, new.meta_data)


def context(build: Build, pipeline: Pipeline, organization: Organization) -> BuildContext:
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
#: Builds of this many jobs or more hold off the garbage collector's full passes while they
#: are planned, written and rendered (kit/collector.py).
LARGE_BUILD = 1000


async def plan_off_loop_if_large(
    definition: PipelineDefinition,
    context: BuildContext,
    *,
    external_keys: dict[str, list[uuid.UUID]] | None = None,
) -> list[PlannedJob]:
    if definition.step_count > LARGE_PLAN:
        with collector.Hold(engaged=definition.step_count >= LARGE_BUILD):
            return await asyncio.to_thread(plan, definition, context, external_keys=external_keys)
    return plan(definition, context, external_keys=external_keys)


#: Jobs written per flush when a build gets many: each flush's work on the event loop stays
#: short (a flush is one piece of the ORM's work), and other requests are served between them.
JOBS_PER_FLUSH = 100


async def add_jobs(
    session: AsyncSession,
    build: Build,
    planned: list[PlannedJob],
    *,
    first_position: int,
    now: datetime,
    flush: bool = True,
) -> list[Job]:
    """The planned jobs, added and flushed `JOBS_PER_FLUSH` at a time; `flush` False leaves
    the last slice to the caller's next flush (a new build's jobs are then written once, in
    the state `advance` gives them, not inserted and updated)."""
    added: list[Job] = []
    with collector.Hold(engaged=len(planned) >= LARGE_BUILD):
        for offset, item in enumerate(planned):
            added.append(
                jobs_service.add(
                    session,
                    item,
                    organization_id=build.organization_id,
                    pipeline_id=build.pipeline_id,
                    build_id=build.id,
                    position=first_position + offset,
                    created_at=now,
                )
            )
            if (offset + 1) % JOBS_PER_FLUSH == 0:
                await session.flush()
            else:
                await pause_if_due()  # making the jobs' objects is most of the time
        if flush:
            await session.flush()
    return added
