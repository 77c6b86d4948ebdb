"""`/` (to the viewer's organization) and `/{org}` (its pipelines)."""

from __future__ import annotations

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from kiteline.server.builds import service as builds
from kiteline.server.events import outbox
from kiteline.server.pipelines import service as pipelines
from kiteline.server.web.auth import page_transaction
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
