"""`/{org}/{pipeline}/builds/{number}`: the build page (header, jobs, annotations, artifacts,
environment and meta-data, waterfall, refreshed live) and its actions — cancel, rebuild,
retry and cancel a job, unblock a block step, download an artifact — each through the same
service function as REST."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agent_api.artifacts import download_urls
from kiteline.server.agents import service as agents
from kiteline.server.annotations import service as annotations_service
from kiteline.server.artifacts import service as artifacts
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds import service as builds
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.builds.repository import Build
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.environment import environment_for
from kiteline.server.jobs.service import Job
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import BadRequest, KitelineError, NotFound, ValidationFailed
from kiteline.server.kit.http import base_url, request_transaction
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.urls import Urls
from kiteline.server.logs import http as log_http
from kiteline.server.logs import service as logs
from kiteline.server.logs.compaction import read_range
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.web.auth import Viewer, find_viewer, page_transaction
from kiteline.server.web.pages.build_feed import BuildFeeds, Rendered, block_digest, block_stream
from kiteline.server.web.pages.build_live import (
    AGENT_NAMES,
    BLOCKS,
    CSRF_PLACEHOLDER,
    META_DATA,
    USER_NAMES,
    Links,
    as_of,
    block_key,
    on_the_clock,
    with_csrf,
)
from kiteline.server.web.pages.build_rows import render_lanes, render_rows
from kiteline.server.web.pages.build_view import (
    BuildLink,
    BuildPage,
    Related,
    UnblockForm,
    build_page,
    favicon,
    state_label,
)
from kiteline.server.web.pages.log_view import (
    WINDOW_BYTES,
    backward_start,
    line_count,
    render_window,
)
from kiteline.server.web.pages.log_windows import forward_window
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import SECURITY_HEADERS, environment, render, static_url

router = page_router()

BUILD = "/{org:org}/{pipeline:slug}/builds/{number}"
JOB = BUILD + "/jobs/{job_id}"
#: A block step's field `key` is posted as `field.<key>` (beside the CSRF token).
FIELD_PREFIX = "field."


def build_path(org: str, pipeline: str, number: int, job_id: uuid.UUID | None = None) -> str:
    return f"/{org}/{pipeline}/builds/{number}" + (f"#{job_id}" if job_id else "")


async def _locate(
    session: AsyncSession, viewer: Viewer, org: str, pipeline: str, number: str
) -> tuple[Organization, Pipeline, Build]:
    """The build as REST finds it, for a member of its organization (another's: 404)."""
    organization = viewer.organization(org)
    found, build = await build_repository.get_with_pipeline(
        session,
        organization_id=organization.id,
        slug=pipeline,
        number=build_repository.parse_number(number),
    )
    return organization, found, build


async def _locate_job(
    session: AsyncSession, viewer: Viewer, org: str, pipeline: str, number: str, job_id: str
) -> tuple[Build, Job]:
    _, _, build = await _locate(session, viewer, org, pipeline, number)
    parsed = parse_uuid(job_id)
    if parsed is None:
        raise NotFound.of("job")
    return build, await jobs.get_in_build(session, build_id=build.id, job_id=parsed)


async def _links(
    session: AsyncSession,
    organization: Organization,
    build: Build,
    build_jobs: list[jobs.JobSummary],
) -> Links:
    """The other builds the page links to (the triggered ones, the parent, the original of a
    rebuild), each read once for all jobs; only the organization's. No read at all for a
    build that links to none (most)."""
    parent_jobs = (
        await jobs.get_many(session, {build.triggered_from_job_id})
        if build.triggered_from_job_id
        else {}
    )
    parent_job = (
        parent_jobs.get(build.triggered_from_job_id) if build.triggered_from_job_id else None
    )
    wanted = {job.triggered_build_id for job in build_jobs if job.triggered_build_id}
    if parent_job is not None:
        wanted.add(parent_job.build_id)
    if build.rebuilt_from_id:
        wanted.add(build.rebuilt_from_id)
    if not wanted:
        return Links({}, None, None)
    others = {
        key: other
        for key, other in (await build_repository.get_many(session, wanted)).items()
        if other.organization_id == organization.id
    }
    their_pipelines = await pipelines.get_many(session, {b.pipeline_id for b in others.values()})

    def link(build_id: uuid.UUID | None, job_id: uuid.UUID | None = None) -> BuildLink | None:
        other = others.get(build_id) if build_id else None
        if other is None:
            return None
        pipeline = their_pipelines[other.pipeline_id]
        return BuildLink(other.id, pipeline.slug, pipeline.name, other.number, other.state, job_id)

    triggered = {
        job.id: found
        for job in build_jobs
        if job.triggered_build_id and (found := link(job.triggered_build_id))
    }
    return Links(
        triggered=triggered,
        parent=link(parent_job.build_id, parent_job.id) if parent_job else None,
        rebuilt_from=link(build.rebuilt_from_id),
    )


def _render_block(
    page: BuildPage,
    *,
    organization: Organization,
    base: str,
    form: UnblockForm | None,
) -> str:
    """The live block's HTML (templates/build/live.html) with the CSRF placeholder
    (`with_csrf` puts the viewer's token in)."""
    template = environment.get_template("build/live.html")
    return template.render(
        organization=organization,
        page=page,
        build=page.build,
        pipeline=page.pipeline,
        base=base,
        rows_html=render_rows(page.rows, base=base, organization=organization),
        lanes_html=render_lanes(page.waterfall),
        form=form,
        csrf_token=CSRF_PLACEHOLDER,
        static=static_url,
    )


async def _render_live(
    session: AsyncSession,
    *,
    organization: Organization,
    pipeline: Pipeline,
    build: Build,
    base: str,
    form: UnblockForm | None,
) -> tuple[str, Links]:
    """The live block (with the CSRF placeholder) and the builds it links to: from the cache
    when what it shows is unchanged (build_live.py), else read and rendered, and kept. Only
    for read-only transactions (every caller's), and a submitted dialog is never cached."""
    build_jobs = await jobs.summaries_for_build(session, build.id)
    links = await _links(session, organization, build, build_jobs)
    page_annotations = await annotations_service.shown_for_build(session, build.id)
    page_artifacts = await artifacts.shown_for_build(session, build.id)
    # On the clock, the block shows durations up to its rows' last moment (build.js ticks them
    # on): what it shows is then a function of its key.
    now = as_of(build, build_jobs) if on_the_clock(build, build_jobs) else utcnow()
    key = None
    if form is None:
        key = block_key(
            organization_slug=organization.slug,
            pipeline=pipeline,
            build=build,
            jobs=build_jobs,
            links=links.key(),
            annotations=page_annotations,
            artifacts=page_artifacts,
        )
        html = BLOCKS.get(key)
        if html is not None:
            return html, links
    user_ids = {job.unblocked_by_id for job in build_jobs if job.unblocked_by_id}
    if build.creator_id:
        user_ids.add(build.creator_id)
    related = Related(
        agents=await AGENT_NAMES.get(session, {j.agent_id for j in build_jobs if j.agent_id}),
        users=await USER_NAMES.get(session, user_ids),
        triggered=links.triggered,
        parent=links.parent,
        rebuilt_from=links.rebuilt_from,
    )
    page = build_page(
        build=build,
        pipeline=pipeline,
        jobs=build_jobs,
        related=related,
        annotations=page_annotations,
        artifacts=page_artifacts,
        meta_data=await META_DATA.get(session, build),
        form=form,
        now=now,
    )
    html = _render_block(page, organization=organization, base=base, form=form)
    if key is not None:
        BLOCKS.put(key, html)
    return html, links


async def render_build_page(
    request: Request,
    org: str,
    pipeline: str,
    number: str,
    *,
    form: UnblockForm | None = None,
    status: int = 200,
    live_block: bool = False,
) -> Response:
    """The page, or with `live_block` only its `build_live` block. The block comes from
    build_live's cache when what it shows has not changed; only these read-only transactions
    fill it. The page links to the block's stream (`…/live`, below), which pushes the block
    each time it changes."""
    async with page_transaction(request, read_only=True) as (session, viewer):
        organization, found, build = await _locate(session, viewer, org, pipeline, number)
        base = build_path(org, found.slug, build.number)
        shared_html, _ = await _render_live(
            session, organization=organization, pipeline=found, build=build, base=base, form=form
        )
        live_html = with_csrf(shared_html, viewer.csrf_token)
        if live_block:
            return HTMLResponse(live_html, status_code=status, headers=SECURITY_HEADERS)
        # The block's stream (build_feed.py) sends it again only once it differs from this.
        block_url = f"{base}/live?" + urlencode({"have": block_digest(shared_html)})
        return render(
            request,
            "build/show.html",
            viewer=viewer,
            organization=organization,
            status=status,
            state_label=state_label(build),
            favicon=favicon(build),
            build=build,
            pipeline=found,
            live_html=live_html,
            block_url=block_url,
        )


@router.get(BUILD)
async def show_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    """The page; with htmx's `HX-Target: build_live` only the block holding its live regions
    (what the block stream below pushes; kept for scripts and to measure a rendering)."""
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "build_live":
        return await _live_block(request, org, pipeline, number)
    return await render_build_page(request, org, pipeline, number)


async def _live_block(request: Request, org: str, pipeline: str, number: str) -> Response:
    """Its own function so that a profile tells the live block's cost from the page's."""
    return await render_build_page(request, org, pipeline, number, live_block=True)


async def feed_block(session: AsyncSession, build_id: uuid.UUID) -> Rendered:
    """The live block as a feed renders it (build_feed.py), for every viewer of the build:
    as `render_build_page` renders it, through the same cache, with the CSRF placeholder."""
    build, found, organization, _ = await build_repository.with_surroundings(session, build_id)
    html, links = await _render_live(
        session,
        organization=organization,
        pipeline=found,
        build=build,
        base=build_path(organization.slug, found.slug, build.number),
        form=None,
    )
    return Rendered(html, frozenset(link.build_id for link in links.triggered.values()))


@router.get(BUILD + "/live")
async def build_live_stream(
    request: Request, org: str, pipeline: str, number: str, have: str | None = None
) -> Response:
    """Server-Sent Events of the page's live block (`event: block`, the block's HTML as its
    data, its digest as its id) each time it changes, the current one first unless it is the
    one the page shows (`have`, or the browser's Last-Event-ID on a reconnect). Only for a
    viewer who may see the build (another organization's: 404); signed out: 204, which tells
    EventSource to stop (the page's next request signs in)."""
    async with request_transaction(request, read_only=True) as session:
        viewer = await find_viewer(session, request)
        if viewer is None:
            return Response(status_code=204)
        organization, _, build = await _locate(session, viewer, org, pipeline, number)
    feeds: BuildFeeds = request.app.state.build_feeds
    return StreamingResponse(
        block_stream(
            feeds,
            organization_id=organization.id,
            build_id=build.id,
            csrf_token=viewer.csrf_token,
            have=request.headers.get("Last-Event-ID") or have,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post(BUILD + "/cancel")
async def cancel_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    async with page_transaction(request) as (session, viewer):
        _, _, build = await _locate(session, viewer, org, pipeline, number)
        await build_transitions.cancel(session, build=build)
        path = build_path(org, pipeline, build.number)
    return RedirectResponse(path, status_code=303)


@router.post(BUILD + "/rebuild")
async def rebuild_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    """A new build of the same commit, branch, message, env and meta-data; opens it."""
    async with page_transaction(request) as (session, viewer):
        organization, found, original = await _locate(session, viewer, org, pipeline, number)
        build = await builds.rebuild(
            session,
            organization=organization,
            pipeline=found,
            original=original,
            creator_id=viewer.user.id,
        )
        path = build_path(org, pipeline, build.number)
    return RedirectResponse(path, status_code=303)


async def _job_action(
    request: Request,
    org: str,
    pipeline: str,
    number: str,
    job_id: str,
    act: Callable[[AsyncSession, Job], Awaitable[Job | None]],
) -> Response:
    """A row's button: `act` on the job (through the same transition as REST), then the build
    page at the job it returns (else at the job)."""
    async with page_transaction(request) as (session, viewer):
        build, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
        shown = await act(session, job) or job
        path = build_path(org, pipeline, build.number, shown.id)
    return RedirectResponse(path, status_code=303)


@router.post(JOB + "/retry")
async def retry_job(
    request: Request, org: str, pipeline: str, number: str, job_id: str
) -> Response:
    """A new attempt, as REST's retry (per the step's `retry.manual`); shows the new job."""

    async def retry(session: AsyncSession, job: Job) -> Job:
        return await build_transitions.retry_job(session, job=job)

    return await _job_action(request, org, pipeline, number, job_id, retry)


@router.post(JOB + "/cancel")
async def cancel_job(
    request: Request, org: str, pipeline: str, number: str, job_id: str
) -> Response:
    async def cancel(session: AsyncSession, job: Job) -> None:
        await build_transitions.cancel_job(session, job=job)

    return await _job_action(request, org, pipeline, number, job_id, cancel)


def _submitted_fields(job: Job, form: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The block step's fields as the API takes them (a multiple select as a list; a field
    left empty is given as empty, so that it counts as missing rather than as its default),
    and as the dialog shows them again."""
    given: dict[str, Any] = {}
    shown: dict[str, list[str]] = {}
    for spec in job.definition.fields:
        key = str(spec["key"])
        values = [str(v) for v in form.getlist(FIELD_PREFIX + key)]
        shown[key] = values
        if spec.get("type") == "select" and spec.get("multiple"):
            given[key] = values
        else:
            given[key] = values[0] if values else ""
    return given, shown


@router.post(JOB + "/unblock")
async def unblock_job(
    request: Request, org: str, pipeline: str, number: str, job_id: str
) -> Response:
    """Unblock with the dialog's fields, validated as the API validates them; what was wrong
    is shown in the dialog again (422), with the values given."""
    submitted = await request.form()
    shown: dict[str, list[str]] = {}
    parsed_job_id: uuid.UUID | None = None
    try:
        async with page_transaction(request) as (session, viewer):
            build, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
            parsed_job_id = job.id
            given, shown = _submitted_fields(job, submitted)
            await build_transitions.unblock_job(
                session, job=job, fields=given, unblocked_by_id=viewer.user.id
            )
            path = build_path(org, pipeline, build.number, job.id)
    except ValidationFailed as error:
        if parsed_job_id is None:
            raise
        field_errors: dict[str, list[str]] = {}
        for item in error.errors:
            field_errors.setdefault(item["field"], []).append(item["code"])
        form = UnblockForm(parsed_job_id, shown, field_errors, None)
        return await render_build_page(request, org, pipeline, number, form=form, status=422)
    except KitelineError as error:
        if parsed_job_id is None or isinstance(error, NotFound):
            raise
        form = UnblockForm(parsed_job_id, shown, {}, error.message)
        return await render_build_page(
            request, org, pipeline, number, form=form, status=error.status
        )
    return RedirectResponse(path, status_code=303)


@router.get(JOB + "/artifacts/{artifact_id}")
async def download_artifact(
    request: Request, org: str, pipeline: str, number: str, job_id: str, artifact_id: str
) -> Response:
    """302 to the artifact's short-lived signed URL, as REST's download answers."""
    async with page_transaction(request) as (session, viewer):
        build, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
        parsed = parse_uuid(artifact_id)
        if parsed is None:
            raise NotFound.of("artifact")
        artifact = await artifacts.get(session, build_id=build.id, artifact_id=parsed)
        if artifact.job_id != job.id:
            raise NotFound.of("artifact")
        if artifact.state == "expired":  # retention deleted its file
            raise NotFound("Artifact has expired")
    (url,) = await download_urls(request, [artifact])
    return RedirectResponse(url, status_code=302)


@router.get(JOB + "/env")
async def job_environment(
    request: Request, org: str, pipeline: str, number: str, job_id: str
) -> Response:
    """The environment the job runs with (as REST's `…/env`), as a fragment its row loads when
    "Environment" is opened."""
    async with page_transaction(request) as (session, viewer):
        _, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
        agent = await agents.find(session, job.agent_id)
        env = await environment_for(session, job, agent, Urls(base_url(request)))
        return render(request, "build/environment.html", viewer=viewer, env=sorted(env.items()))


def _offset(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(value)


@router.get(JOB + "/log")
async def job_log(request: Request, org: str, pipeline: str, number: str, job_id: str) -> Response:
    """The log viewer (a fragment the job's row loads when it first opens) with the log's
    first window; with `after=<byte>&line=<n>` only the window from that byte (the next one,
    or the tail as it grows), with `before=<byte>&line=<n>` the one ending there. `line` is
    the number of the line starting at that byte."""
    after, before = _offset(request, "after"), _offset(request, "before")
    line = _offset(request, "line") or 1
    async with page_transaction(request, read_only=True) as (session, viewer):
        build, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
        complete = job.finished_at is not None
        layout = await logs.open_log(session, job.id, complete=complete)
        store = request.app.state.blobs
        if before is not None:
            stop = min(before, layout.size)
            first = max(stop - WINDOW_BYTES, 0)
            data = await read_range(session, store, layout, first, stop)
            start = backward_start(data, start=first)
            data = data[start - first :]
            first_line = max(line - line_count(data), 1)
            window = render_window(
                data, start=start, size=layout.size, first_line=first_line, complete=complete
            )
        else:  # as the live stream pushes it to the log's followers (log_windows.py)
            window = await forward_window(
                session, store, layout, after=after or 0, line=line, complete=complete
            )
        base = build_path(org, pipeline, build.number)
        return render(
            request,
            "build/log.html" if after is None and before is None else "build/log_window.html",
            viewer=viewer,
            organization=viewer.organization(org),
            window=window,
            job=job,
            log_deleted=layout.deleted,
            log_url=f"{base}/jobs/{job.id}/log",
        )


@router.get(JOB + "/log.txt")
async def job_log_text(
    request: Request, org: str, pipeline: str, number: str, job_id: str
) -> Response:
    """The raw log, as REST's `…/log.txt` (byte ranges too), to download."""
    async with page_transaction(request, read_only=True) as (session, viewer):
        _, job = await _locate_job(session, viewer, org, pipeline, number, job_id)
        layout = await logs.open_log(session, job.id, complete=job.finished_at is not None)
    response = log_http.text_response(request, layout)
    response.headers["Content-Disposition"] = f'attachment; filename="{job.id}.log"'
    return response
