"""The pipeline's source on its settings page (provider, `webhook_url`, the code host's newest
deliveries) and `/{org}/{pipeline}/settings/schedules` (list, "New Schedule", enable, disable,
delete); read and changed through the same services as REST and GraphQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository as build_repository
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import providers
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.schedules import service as schedules
from kiteline.server.schedules.service import PipelineSchedule
from kiteline.server.sources import service as sources
from kiteline.server.web.auth import Viewer, page_transaction
from kiteline.server.web.forms import read_form
from kiteline.server.web.pages.pipeline_view import field_errors
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

SCHEDULES = "/{org:org}/{pipeline:slug}/settings/schedules"
#: How many of the newest deliveries the settings page shows.
DELIVERIES_SHOWN = 20
SCHEDULE_FIELDS = ("label", "cronline", "branch", "commit", "message", "env", "enabled")


@dataclass(frozen=True)
class DeliveryRow:
    provider: str
    event: str
    outcome: str
    reason: str
    build_number: int | None
    build_path: str | None
    created_at: datetime


@dataclass(frozen=True)
class SourceSection:
    provider_id: str
    webhook_url: str
    deliveries: list[DeliveryRow]


async def source_section(
    session: AsyncSession, request: Request, organization: Organization, pipeline: Pipeline
) -> SourceSection:
    """The provider, the webhook URL (every member of the organization may edit its pipelines
    on the web, as REST shows the URL to a token that may write them) and the newest
    deliveries, read as REST's `source-deliveries` reads them."""
    rows, _total = await sources.deliveries(session, pipeline, offset=0, limit=DELIVERIES_SHOWN)
    shown: list[DeliveryRow] = []
    for row in rows:
        number: int | None = None
        path: str | None = None
        if row.build_id is not None:
            surroundings = await build_repository.with_surroundings(session, row.build_id)
            number = surroundings.build.number
            path = f"/{organization.slug}/{pipeline.slug}/builds/{number}"
        shown.append(
            DeliveryRow(
                provider=row.provider,
                event=row.event,
                outcome=row.outcome,
                reason=row.reason,
                build_number=number,
                build_path=path,
                created_at=row.created_at,
            )
        )
    urls = Urls(base_url(request))
    return SourceSection(
        provider_id=providers.provider_id(pipeline.repository, pipeline.settings),
        webhook_url=urls.web(f"deliver/{pipeline.webhook_token}") if pipeline.webhook_token else "",
        deliveries=shown,
    )


# Schedules ----------------------------------------------------------------------------------


@dataclass
class ScheduleForm:
    """ "New Schedule"'s values (as typed, when refused) and the service's errors per field."""

    label: str = ""
    cronline: str = ""
    branch: str = ""
    commit: str = "HEAD"
    message: str = ""
    env: str = ""
    enabled: bool = True
    errors: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "cronline": self.cronline,
            "branch": self.branch,
            "commit": self.commit,
            "message": self.message.strip() or None,
            "env": self.env.replace("\r\n", "\n"),
            "enabled": self.enabled,
        }


async def locate_pipeline(
    session: AsyncSession, viewer: Viewer, org: str, slug: str
) -> tuple[Organization, Pipeline]:
    """The pipeline as REST finds it, for a member of its organization (another's: 404)."""
    organization = viewer.organization(org)
    return organization, await pipelines.get(session, organization_id=organization.id, slug=slug)


async def _schedule(
    session: AsyncSession, pipeline: Pipeline, schedule_id: str
) -> PipelineSchedule:
    """One of the pipeline's schedules; another pipeline's, or none, is a 404."""
    try:
        wanted = uuid.UUID(schedule_id)
    except ValueError:
        raise NotFound.of("pipeline schedule") from None
    schedule = await schedules.get(session, wanted)
    if schedule.pipeline_id != pipeline.id:
        raise NotFound.of("pipeline schedule")
    return schedule


async def render_schedules_page(
    request: Request,
    org: str,
    slug: str,
    *,
    form: ScheduleForm | None = None,
    status: int = 200,
) -> Response:
    async with page_transaction(request, read_only=True) as (session, viewer):
        organization, pipeline = await locate_pipeline(session, viewer, org, slug)
        listed = (await schedules.for_pipelines(session, [pipeline.id]))[pipeline.id]
        return render(
            request,
            "pipelines/schedules.html",
            viewer=viewer,
            organization=organization,
            status=status,
            pipeline=pipeline,
            schedules=listed,
            form=form or ScheduleForm(branch=pipeline.default_branch),
        )


@router.get(SCHEDULES)
async def schedules_page(request: Request, org: str, pipeline: str) -> Response:
    return await render_schedules_page(request, org, pipeline)


@router.post(SCHEDULES)
async def create_schedule(request: Request, org: str, pipeline: str) -> Response:
    """ "Create Schedule": as GraphQL's `pipelineScheduleCreate`; a refusal (an invalid
    cronline, an env line that is not KEY=value) is shown beside its field, with what was
    typed (422)."""
    submitted = await request.form()
    form = read_form(submitted, ScheduleForm)
    try:
        async with page_transaction(request) as (session, viewer):
            organization, found = await locate_pipeline(session, viewer, org, pipeline)
            await schedules.create(
                session,
                pipeline=found,
                created_by_id=viewer.user.id,
                now=utcnow(),
                fields=form.fields(),
            )
            path = f"/{organization.slug}/{found.slug}/settings/schedules"
    except ValidationFailed as error:
        form.errors, form.error = field_errors(error.errors, SCHEDULE_FIELDS)
        return await render_schedules_page(request, org, pipeline, form=form, status=422)
    return RedirectResponse(path, status_code=303)


async def _set_enabled(request: Request, org: str, pipeline: str, schedule: str, on: bool) -> str:
    async with page_transaction(request) as (session, viewer):
        organization, found = await locate_pipeline(session, viewer, org, pipeline)
        row = await _schedule(session, found, schedule)
        await schedules.update(session, row, {"enabled": on}, now=utcnow())
        return f"/{organization.slug}/{found.slug}/settings/schedules"


@router.post(SCHEDULES + "/{schedule}/enable")
async def enable_schedule(request: Request, org: str, pipeline: str, schedule: str) -> Response:
    path = await _set_enabled(request, org, pipeline, schedule, True)
    return RedirectResponse(path, status_code=303)


@router.post(SCHEDULES + "/{schedule}/disable")
async def disable_schedule(request: Request, org: str, pipeline: str, schedule: str) -> Response:
    path = await _set_enabled(request, org, pipeline, schedule, False)
    return RedirectResponse(path, status_code=303)


@router.post(SCHEDULES + "/{schedule}/delete")
async def delete_schedule(request: Request, org: str, pipeline: str, schedule: str) -> Response:
    """ "Delete": as GraphQL's `pipelineScheduleDelete`."""
    async with page_transaction(request) as (session, viewer):
        organization, found = await locate_pipeline(session, viewer, org, pipeline)
        await schedules.delete(session, await _schedule(session, found, schedule))
        path = f"/{organization.slug}/{found.slug}/settings/schedules"
    return RedirectResponse(path, status_code=303)
