"""`/` (to the viewer's organization), `/{org}` (its pipelines), and the organization's live
event stream that pages subscribe to."""

from __future__ import annotations

import uuid

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from kiteline.server.builds import service as builds
from kiteline.server.events import outbox
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import request_transaction
from kiteline.server.pipelines import service as pipelines
from kiteline.server.web.auth import find_viewer, page_transaction
from kiteline.server.web.live import (
    LiveHub,
    event_stream,
    log_topic,
    organization_topic,
    subject_topic,
)
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

PIPELINES_PER_PAGE = 100


@router.get("/")
async def home(request: Request) -> Response:
    async with page_transaction(request) as (_session, viewer):
        if not viewer.organizations:
            return render(request, "no_organization.html", viewer=viewer)
        return RedirectResponse(f"/{viewer.organizations[0].slug}", status_code=303)


@router.get("/organizations/{org}/live")
async def live_events(
    request: Request,
    org: str,
    pipeline: list[uuid.UUID] = Query([]),
    build: list[uuid.UUID] = Query([]),
    job: list[uuid.UUID] = Query([]),
    agent: list[uuid.UUID] = Query([]),
    job_log: list[uuid.UUID] = Query([], alias="log"),
    after: int | None = Query(None, ge=0),
) -> Response:
    """Server-Sent Events for a page: the organization's events, or only those of the named
    pipelines, builds, jobs and agents, and the sizes of the named jobs' logs. `after` (the
    outbox position the page was rendered at, see `live_position`) or the browser's
    Last-Event-ID replays the events that came in between."""
    async with request_transaction(request, read_only=True) as session:
        viewer = await find_viewer(session, request)
        if viewer is None:
            # 204 tells EventSource to stop reconnecting; the page's next request signs in.
            return Response(status_code=204)
        organization = viewer.organization(org)
        for job_id in job_log:  # log sizes are read by job id: only the organization's jobs
            if (await jobs.get(session, job_id)).organization_id != organization.id:
                raise NotFound.of("job")
    subjects = [("pipeline", pipeline), ("build", build), ("job", job), ("agent", agent)]
    topics = [
        subject_topic(organization.id, kind, subject_id)
        for kind, ids in subjects
        for subject_id in ids
    ] + [log_topic(organization.id, job_id) for job_id in job_log]
    topics = topics or [organization_topic(organization.id)]
    last_event_id = request.headers.get("Last-Event-ID", "")
    hub: LiveHub = request.app.state.live
    return StreamingResponse(
        event_stream(
            hub,
            organization_id=organization.id,
            topics=topics,
            after_id=int(last_event_id) if last_event_id.isdigit() else after,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/{org}")
async def pipelines_page(
    request: Request, org: str, name_filter: str = Query("", alias="filter")
) -> Response:
    """The example of a GET page: the viewer's organization (404 for another's), the same
    service reads as REST, in a read-only transaction, rendered; its `pipelines` block is
    refreshed live."""
    async with page_transaction(request) as (session, viewer):
        organization = viewer.organization(org)
        listed, total = await pipelines.list_for_organization(
            session,
            organization_id=organization.id,
            offset=0,
            limit=PIPELINES_PER_PAGE,
            name=name_filter.strip() or None,
        )
        counts = await builds.counts_for_pipelines(session, [p.id for p in listed])
        position = await outbox.latest_id(session)
        return render(
            request,
            "pipelines/index.html",
            viewer=viewer,
            organization=organization,
            pipelines=listed,
            total=total,
            counts=counts,
            no_counts=builds.PipelineCounts(),
            name_filter=name_filter,
            live_position=position,
        )
