"""`/badges/{key}.svg` (and `.json`): a pipeline's build status badge, the `badge_url` of its
REST and GraphQL shapes. Served without sign-in — READMEs and dashboards embed it — to whoever
knows the pipeline's random key; `?branch=` scopes it to a branch, `?style=square` drops the
rounded corners, `?step=` says how the jobs of the step with that label (or key) did, as on
Buildkite."""

from __future__ import annotations

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response

from kiteline.server.builds import repository as build_repository
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.shapes import rest_state
from kiteline.server.jobs.states import JobType
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import request_transaction
from kiteline.server.pipelines import service as pipelines
from kiteline.server.web.badges import UNKNOWN, badge_svg, status_of, step_status
from kiteline.server.web.routing import page_router

router = page_router()

#: A badge changes with every build: caches (GitHub's image proxy among them) must ask again.
HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "X-Content-Type-Options": "nosniff",
    # An SVG opened on its own is a document: it may run nothing and load nothing.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}
FORMATS = {".svg", ".json"}


@router.get("/badges/{name}")
async def badge(
    request: Request,
    name: str,
    branch: str = Query(""),
    step: str = Query(""),
    style: str = Query(""),
) -> Response:
    key, dot, extension = name.rpartition(".")
    if not dot or f".{extension}" not in FORMATS:
        raise NotFound.of("badge")
    async with request_transaction(request, read_only=True) as session:
        pipeline = await pipelines.get_by_badge_key(session, key)
        newest = await build_repository.latest(session, pipeline.id, branch=branch.strip() or None)
        if newest is None:
            status = UNKNOWN
        elif step:
            steps_jobs = [
                job
                for job in await jobs.summaries_for_build(session, newest[0])
                if not job.retried
                and job.type != JobType.WAITER
                and step in (job.label, job.step_key)
            ]
            status = step_status(
                ["passed" if job.soft_failed else rest_state(job) for job in steps_jobs]
            )
        else:
            status = status_of(newest[1])
    if extension == "json":
        return JSONResponse({"status": status}, headers=HEADERS)
    return Response(
        badge_svg(status, square=style in ("square", "flat-square")),
        media_type="image/svg+xml",
        headers=HEADERS,
    )
