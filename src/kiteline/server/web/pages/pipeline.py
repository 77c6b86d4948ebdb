"""`/{org}/{pipeline}` (its builds, filtered and paged as the REST list, refreshed live, and the
"New Build" dialog) and `/{org}/{pipeline}/settings` (edit, archive, unarchive, delete, and the
source section of pipeline_sources); every action through the same service function as REST."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import listing, rendering
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds import service as builds
from kiteline.server.builds.query import ListOptions
from kiteline.server.events import outbox
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import KitelineError, NotFound, ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.pagination import Page
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.web.auth import page_transaction
from kiteline.server.web.forms import form_text, read_form
from kiteline.server.web.pages.pipeline_sources import locate_pipeline, source_section
from kiteline.server.web.pages.pipeline_view import (
    SETTINGS_FIELDS,
    STATE_CHOICES,
    BuildRow,
    Listing,
    NewBuildForm,
    SettingsForm,
    build_row,
    env_lines,
    field_errors,
)
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

PIPELINE = "/{org:org}/{pipeline:slug}"
SETTINGS = PIPELINE + "/settings"
#: The list shows builds as REST lists them, without their jobs or the pipeline.
LIST_SHAPE = rendering.Shape(include_jobs=False, include_pipeline=False)
NEW_BUILD_FIELDS = ("message", "commit", "branch", "env")


async def _build_rows(
    request: Request,
    session: AsyncSession,
    organization: Organization,
    pipeline: Pipeline,
    options: ListOptions,
    page: Page,
) -> tuple[list[BuildRow], bool]:
    """A page of the pipeline's builds: REST's list query and REST's (cached) Build JSON."""
    listed, has_next = await listing.list_page(
        session,
        organization_ids=[organization.id],
        pipeline_id=pipeline.id,
        where=options.where,
        offset=page.offset,
        limit=page.per_page,
    )
    rendered = await rendering.render(
        session,
        Urls(base_url(request)),
        listed,
        org_slugs={organization.id: organization.slug},
        shape=LIST_SHAPE,
        cache=rendering.cache_of(request.app),
        pipelines_known=[pipeline],
    )
    now = utcnow()
    rows = [
        build_row(json.loads(body), repository=pipeline.repository, now=now)
        for body in await rendered.each()
    ]
    return rows, has_next


async def render_pipeline_page(
    request: Request,
    org: str,
    slug: str,
    *,
    form: NewBuildForm | None = None,
    status: int = 200,
) -> Response:
    filtered = form is None  # a refused New Build shows the first page, unfiltered
    options = (
        ListOptions.from_request(request)
        if filtered
        else ListOptions(build_repository.BuildFilter())
    )
    page = Page.from_request(request) if filtered else Page(1, Page.from_request(request).per_page)
    async with page_transaction(request, read_only=True) as (session, viewer):
        # Read before the rows: an event committed in between is replayed to the page.
        position = await outbox.latest_id(session)
        organization, pipeline = await locate_pipeline(session, viewer, org, slug)
        rows, has_next = await _build_rows(request, session, organization, pipeline, options, page)
        listing = Listing(
            base=f"/{organization.slug}/{pipeline.slug}",
            branch=",".join(options.where.branches),
            state=",".join(options.where.states),
            page=page.number,
            per_page=page.per_page,
            has_next=has_next,
        )
        return render(
            request,
            "pipelines/show.html",
            viewer=viewer,
            organization=organization,
            status=status,
            pipeline=pipeline,
            rows=rows,
            listing=listing,
            states=STATE_CHOICES,
            form=form or NewBuildForm(branch=pipeline.default_branch),
            live_url=(
                f"/organizations/{organization.slug}/live?pipeline={pipeline.id}&after={position}"
            ),
        )


@router.get(PIPELINE)
async def show_pipeline(request: Request, org: str, pipeline: str) -> Response:
    """The pipeline's builds, newest first; `?branch=` and `?state=` filter them and `?page=`
    pages them as REST's build list does. Its `builds` block is refreshed live."""
    return await render_pipeline_page(request, org, pipeline)


@router.get(PIPELINE + "/builds")
async def builds_list(request: Request, org: str, pipeline: str) -> Response:
    """Buildkite's path of the list is the pipeline's page."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/{org}/{pipeline}{query}", status_code=303)


@router.post(PIPELINE + "/builds")
async def create_build(request: Request, org: str, pipeline: str) -> Response:
    """ "Create Build": a build as REST's create makes it (source `ui`, the viewer as its
    creator and author); opens it. A refusal is shown in the dialog (422)."""
    submitted = await request.form()
    form = read_form(submitted, NewBuildForm)
    try:
        async with page_transaction(request) as (session, viewer):
            organization, found = await locate_pipeline(session, viewer, org, pipeline)
            build = await builds.create(
                session,
                organization=organization,
                pipeline=found,
                creator_id=viewer.user.id,
                new=builds.NewBuild(
                    commit=form.commit,
                    branch=form.branch,
                    message=form.message.strip() or None,
                    env=builds.environment_from_pairs(env_lines(form.env)),
                    author={"name": viewer.user.name, "email": viewer.user.email},
                    source="ui",
                ),
            )
            path = f"/{organization.slug}/{found.slug}/builds/{build.number}"
    except ValidationFailed as error:
        form.errors, form.error = field_errors(error.errors, NEW_BUILD_FIELDS)
        return await render_pipeline_page(request, org, pipeline, form=form, status=422)
    except KitelineError as error:
        if isinstance(error, NotFound) or error.status in (401, 403):
            raise
        form.error = error.message
        return await render_pipeline_page(request, org, pipeline, form=form, status=error.status)
    return RedirectResponse(path, status_code=303)


# Settings -----------------------------------------------------------------------------------


async def render_settings_page(
    request: Request,
    org: str,
    slug: str,
    *,
    form: SettingsForm | None = None,
    delete_error: str | None = None,
    status: int = 200,
) -> Response:
    async with page_transaction(request, read_only=True) as (session, viewer):
        organization, pipeline = await locate_pipeline(session, viewer, org, slug)
        return render(
            request,
            "pipelines/settings.html",
            viewer=viewer,
            organization=organization,
            status=status,
            pipeline=pipeline,
            form=form or SettingsForm.of(pipeline),
            delete_error=delete_error,
            saved=request.query_params.get("saved") == "1" and form is None,
            badge_url=Urls(base_url(request)).badge(pipeline.badge_key),
            pipeline_url=Urls(base_url(request)).web(f"{organization.slug}/{pipeline.slug}"),
            source=await source_section(session, request, organization, pipeline),
        )


@router.get(SETTINGS)
async def settings_page(request: Request, org: str, pipeline: str) -> Response:
    return await render_settings_page(request, org, pipeline)


@router.post(SETTINGS)
async def save_settings(request: Request, org: str, pipeline: str) -> Response:
    """ "Save Pipeline": the form as a PATCH through REST's `pipelines.service.update`; the
    API's errors are shown beside their fields, with what was typed (422)."""
    submitted = await request.form()
    form = read_form(submitted, SettingsForm)
    try:
        async with page_transaction(request) as (session, viewer):
            organization, found = await locate_pipeline(session, viewer, org, pipeline)
            await pipelines.update(session, found, form.changes())
            path = f"/{organization.slug}/{found.slug}/settings?saved=1"
    except ValidationFailed as error:
        form.errors, form.error = field_errors(error.errors, SETTINGS_FIELDS)
        return await render_settings_page(request, org, pipeline, form=form, status=422)
    return RedirectResponse(path, status_code=303)


@router.post(SETTINGS + "/archive")
async def archive_pipeline(request: Request, org: str, pipeline: str) -> Response:
    """ "Archive": as REST's archive; no new builds until unarchived."""
    return await _change_archived(request, org, pipeline, pipelines.archive)


@router.post(SETTINGS + "/unarchive")
async def unarchive_pipeline(request: Request, org: str, pipeline: str) -> Response:
    return await _change_archived(request, org, pipeline, pipelines.unarchive)


async def _change_archived(
    request: Request, org: str, pipeline: str, change: Callable[[Pipeline], None]
) -> Response:
    """Archive or unarchive (`change`), then back to the settings."""
    async with page_transaction(request) as (session, viewer):
        organization, found = await locate_pipeline(session, viewer, org, pipeline)
        change(found)
        path = f"/{organization.slug}/{found.slug}/settings"
    return RedirectResponse(path, status_code=303)


@router.post(SETTINGS + "/delete")
async def delete_pipeline(request: Request, org: str, pipeline: str) -> Response:
    """ "Delete Pipeline", once its slug is typed to confirm; as REST's delete (its builds go
    with it). Back to the organization's pipelines."""
    confirmation = form_text(await request.form(), "confirm").strip()
    async with page_transaction(request) as (session, viewer):
        organization, found = await locate_pipeline(session, viewer, org, pipeline)
        if confirmation == found.slug:
            await pipelines.delete(session, found)
            return RedirectResponse(f"/{organization.slug}", status_code=303)
    return await render_settings_page(
        request,
        org,
        pipeline,
        delete_error=f"Type “{pipeline}” to confirm: the pipeline was not deleted",
        status=422,
    )
