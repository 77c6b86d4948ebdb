"""/v2/organizations; the Organization JSON is `shapes`'."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kiteline.server.kit.http import base_url
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service
from kiteline.server.organizations.shapes import organization_json
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["organizations"])


@router.get("/organizations")
@router.get("/organizations/", include_in_schema=False)
async def list_organizations(request: Request, response: Response) -> list[dict[str, Any]]:
    async with api_transaction(request, "read_organizations") as (session, principal):
        organizations = principal.visible(await service.list_for_user(session, principal.user_id))
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    add_link_header(response, request, urls.base, page, total=len(organizations))
    selected = organizations[page.offset : page.offset + page.per_page]
    return [organization_json(urls, organization) for organization in selected]


@router.get("/organizations/{org}")
@router.get("/organizations/{org}/", include_in_schema=False)
async def get_organization(request: Request, org: str) -> dict[str, Any]:
    async with api_transaction(request, "read_organizations") as (session, principal):
        organization = await service.get_for_user(session, slug=org, user_id=principal.user_id)
    return organization_json(Urls(base_url(request)), organization)
