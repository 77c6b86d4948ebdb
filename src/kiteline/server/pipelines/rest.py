"""/v2/organizations/{org}/pipelines; the Pipeline JSON is `shapes`'."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.pipelines.shapes import render_pipelines
from kiteline.server.tokens.auth import Principal, api_transaction

router = APIRouter(tags=["pipelines"])


class PipelineSettings(BaseModel):
    """What creating a pipeline and updating one both set."""

    repository: str | None = None
    configuration: str | None = None
    steps: list[dict[str, Any]] | None = None
    description: str | None = None
    default_branch: str | None = None
    branch_configuration: str | None = None
    env: dict[str, str] | None = None
    visibility: str | None = None
    provider_settings: dict[str, Any] | None = None
    provider_id: str | None = None


class PipelineCreate(PipelineSettings):
    model_config = ConfigDict(extra="allow")

    name: str
    slug: str | None = None


@router.get("/organizations/{org}/pipelines")
@router.get("/organizations/{org}/pipelines/", include_in_schema=False)
async def list_pipelines(request: Request, response: Response, org: str) -> list[dict[str, Any]]:
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    async with api_transaction(request, "read_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipelines, total = await service.list_for_organization(
            session,
            organization_id=organization.id,
            offset=page.offset,
            limit=page.per_page,
            name=request.query_params.get("name"),
            repository=request.query_params.get("repository"),
        )
        body = await render_pipelines(
            session, urls, org, pipelines, show_webhook_url=_may_edit(principal)
        )
    add_link_header(response, request, urls.base, page, total=total)
    return body


@router.post("/organizations/{org}/pipelines", status_code=201)
@router.post("/organizations/{org}/pipelines/", status_code=201, include_in_schema=False)
async def create_pipeline(request: Request, org: str, body: PipelineCreate) -> dict[str, Any]:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        configuration = body.configuration
        if configuration is None and body.steps is not None:
            configuration = service.configuration_from_steps(body.steps)
        if configuration is None:
            raise ValidationFailed.field(
                "configuration",
                'Step configuration is missing, expected `steps: { yaml: "..." }`',
            )
        pipeline = await service.create(
            session,
            organization_id=organization.id,
            name=body.name,
            configuration=configuration,
            created_by_id=principal.user_id,
            slug=body.slug,
            repository=body.repository or "",
            description=body.description,
            default_branch=body.default_branch,
            branch_configuration=body.branch_configuration,
            env=body.env,
            visibility=body.visibility or "private",
            settings={
                "provider_settings": body.provider_settings or {},
                "provider_id": body.provider_id,
            },
        )
        return await _render_one(session, request, org, pipeline, principal)


class PipelineUpdate(PipelineSettings):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    skip_queued_branch_builds: bool | None = None
    skip_queued_branch_builds_filter: str | None = None
    cancel_running_branch_builds: bool | None = None
    cancel_running_branch_builds_filter: str | None = None
    allow_rebuilds: bool | None = None
    tags: list[str] | None = None


PIPELINE = "/organizations/{org}/pipelines/{slug}"


async def _pipeline(session: AsyncSession, principal: Principal, org: str, slug: str) -> Pipeline:
    """The pipeline `slug` of the caller's organization `org` (404 when either is not found)."""
    organization = await organizations.get_for_user(session, slug=org, user_id=principal.user_id)
    return await service.get(session, organization_id=organization.id, slug=slug)


def _may_edit(principal: Principal) -> bool:
    return "write_pipelines" in principal.token.scopes


async def _render_one(
    session: AsyncSession, request: Request, org: str, pipeline: Pipeline, principal: Principal
) -> dict[str, Any]:
    (rendered,) = await render_pipelines(
        session,
        Urls(base_url(request)),
        org,
        [pipeline],
        show_webhook_url=_may_edit(principal),
    )
    return rendered


@router.patch(PIPELINE)
@router.patch(PIPELINE + "/", include_in_schema=False)
async def update_pipeline(
    request: Request, org: str, slug: str, body: PipelineUpdate
) -> dict[str, Any]:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        pipeline = await _pipeline(session, principal, org, slug)
        await service.update(session, pipeline, body.model_dump(exclude_unset=True))
        return await _render_one(session, request, org, pipeline, principal)


@router.delete(PIPELINE, status_code=204)
@router.delete(PIPELINE + "/", status_code=204, include_in_schema=False)
async def delete_pipeline(request: Request, org: str, slug: str) -> Response:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        pipeline = await _pipeline(session, principal, org, slug)
        await service.delete(session, pipeline)
    return Response(status_code=204)


@router.post(PIPELINE + "/archive")
async def archive_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    return await _change_archived(request, org, slug, service.archive)


@router.post(PIPELINE + "/unarchive")
async def unarchive_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    return await _change_archived(request, org, slug, service.unarchive)


async def _change_archived(
    request: Request, org: str, slug: str, change: Callable[[Pipeline], None]
) -> dict[str, Any]:
    """Archive or unarchive (`change`); answers the pipeline."""
    async with api_transaction(request, "write_pipelines") as (session, principal):
        pipeline = await _pipeline(session, principal, org, slug)
        change(pipeline)
        return await _render_one(session, request, org, pipeline, principal)


@router.get("/organizations/{org}/pipelines/{slug}")
@router.get("/organizations/{org}/pipelines/{slug}/", include_in_schema=False)
async def get_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    async with api_transaction(request, "read_pipelines") as (session, principal):
        pipeline = await _pipeline(session, principal, org, slug)
        return await _render_one(session, request, org, pipeline, principal)
