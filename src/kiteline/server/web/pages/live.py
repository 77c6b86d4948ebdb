"""`/organizations/{org}/live`: the Server-Sent Events stream a page subscribes to (see
web/live.py and docs/decisions/0013-web-ui.md)."""

from __future__ import annotations

import uuid

from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse

from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import request_transaction
from kiteline.server.kit.ids import parse_int
from kiteline.server.web.auth import find_viewer
from kiteline.server.web.live import (
    LiveHub,
    event_stream,
    log_topic,
    organization_topic,
    subject_topic,
)
from kiteline.server.web.routing import page_router

router = page_router()


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
    log_from: int | None = Query(None, alias="from", ge=0),
    line: int = Query(1, ge=1),
) -> Response:
    """Server-Sent Events for a page: the organization's events, or only those of the named
    pipelines, builds, jobs and agents, and the sizes of the named jobs' logs. `after` (the
    outbox position the page was rendered at, see `live_position`) or the browser's
    Last-Event-ID replays the events that came in between. With one log, `from=<byte>&line=<n>`
    (what the viewer has: its last window's end and next line) has its new lines pushed:
    each size comes with the window from there (decision 0049)."""
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
    log_positions = {}
    if log_from is not None and len(job_log) == 1:
        log_positions[log_topic(organization.id, job_log[0])] = (log_from, line)
    last_event_id = request.headers.get("Last-Event-ID", "")
    hub: LiveHub = request.app.state.live
    return StreamingResponse(
        event_stream(
            hub,
            organization_id=organization.id,
            topics=topics,
            after_id=resumed if (resumed := parse_int(last_event_id)) is not None else after,
            log_positions=log_positions,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
