"""`/deliver/<token>`, where code hosts send pushes and pull requests, and the pipeline's
`source-deliveries` (a Kiteline extension) that show what each one did."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import service as builds
from kiteline.server.kit.http import base_url, request_transaction
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.sources import service
from kiteline.server.sources.models import SourceDelivery
from kiteline.server.tokens.auth import api_transaction

deliver_router = APIRouter(tags=["sources"])
router = APIRouter(tags=["sources"])

#: Bodies larger than this are refused before being read whole (GitHub caps its own at 25 MB).
MAX_BODY_BYTES = 25 * 1024 * 1024


@deliver_router.post("/deliver/{token}", include_in_schema=False)
async def deliver(request: Request, token: str) -> Response:
    """A code host's webhook: 201 with the build it created, 200 when acknowledged without a
    build (ping, deleted branch, filtered out, repeated delivery), 400 for a payload that is
    not the host's JSON, 401 for a wrong signature, 404 for an unknown token."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse({"message": "The payload is larger than 25 MB"}, status_code=413)
    headers = {name.lower(): value for name, value in request.headers.items()}
    async with request_transaction(request) as session:
        receipt = await service.receive(session, token=token, headers=headers, body=body)
        await session.flush()
        answer = await _delivery_json(session, Urls(base_url(request)), receipt.delivery)
    if receipt.status_code >= 400:
        answer = {"message": receipt.delivery.reason, **answer}
    return JSONResponse(answer, status_code=receipt.status_code)


async def _delivery_json(
    session: AsyncSession, urls: Urls, delivery: SourceDelivery, org_slug: str | None = None
) -> dict[str, Any]:
    build: dict[str, Any] | None = None
    if delivery.build_id is not None:
        surroundings = await builds.with_surroundings(session, delivery.build_id)
        org = org_slug or surroundings.organization.slug
        slug = surroundings.pipeline.slug
        build = {
            "id": str(surroundings.build.id),
            "number": surroundings.build.number,
            "url": urls.build(org, slug, surroundings.build.number),
            "web_url": urls.build_web(org, slug, surroundings.build.number),
        }
    return {
        "id": str(delivery.public_id),
        "provider": delivery.provider,
        "event": delivery.event,
        "delivery_id": delivery.delivery_id,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "status_code": delivery.status_code,
        "build": build,
        "created_at": iso(delivery.created_at),
    }


@router.get("/organizations/{org}/pipelines/{slug}/source-deliveries")
async def list_source_deliveries(
    request: Request, response: Response, org: str, slug: str
) -> list[dict[str, Any]]:
    """Kiteline: what the code host sent to the pipeline's webhook URL, newest first."""
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    async with api_transaction(request, "read_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await pipelines.get(session, organization_id=organization.id, slug=slug)
        rows, total = await service.deliveries(
            session, pipeline, offset=page.offset, limit=page.per_page
        )
        body = [await _delivery_json(session, urls, row, org) for row in rows]
    add_link_header(response, request, urls.base, page, total=total)
    return body
