"""/v2/organizations/{org}/pipelines and the Pipeline JSON."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import PipelineError, parse_pipeline, to_rest_steps
from kiteline.server.builds import service as builds_service
from kiteline.server.kit import offload
from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import providers, service
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.tokens.auth import Principal, api_transaction
from kiteline.server.users import service as users
from kiteline.server.users.models import User
from kiteline.server.users.rest import user_json

router = APIRouter(tags=["pipelines"])


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    repository: str | None = None
    configuration: str | None = None
    steps: list[dict[str, Any]] | None = None
    slug: str | None = None
    description: str | None = None
    default_branch: str | None = None
    branch_configuration: str | None = None
    env: dict[str, str] | None = None
    visibility: str | None = None
    provider_settings: dict[str, Any] | None = None
    provider_id: str | None = None


def _rest_steps_of(configuration: str) -> list[dict[str, Any]]:
    """The configuration's steps in REST form."""
    try:
        return to_rest_steps(parse_pipeline(configuration))
    except PipelineError:
        return []


#: Cached: every build list embeds its pipeline, and parsing YAML per request was a visible
#: share of the time. Callers only serialize it.
_rest_steps_small = lru_cache(maxsize=256)(_rest_steps_of)
#: Large configurations' steps, parsed off the loop by `render_pipelines`; oldest out first.
_large_rest_steps: dict[str, list[dict[str, Any]]] = {}
LARGE_CACHED = 8


def _rest_steps(configuration: str) -> list[dict[str, Any]]:
    steps = _large_rest_steps.get(configuration)
    return steps if steps is not None else _rest_steps_small(configuration)


def pipeline_json(
    urls: Urls,
    org_slug: str,
    pipeline: Pipeline,
    *,
    creator: User | None,
    counts: builds_service.PipelineCounts,
    show_webhook_url: bool = False,
) -> dict[str, Any]:
    url = urls.pipeline(org_slug, pipeline.slug)
    return {
        "id": str(pipeline.id),
        "graphql_id": graphql_id("Pipeline", pipeline.id),
        "url": url,
        "web_url": urls.web(f"{org_slug}/{pipeline.slug}"),
        "name": pipeline.name,
        "description": pipeline.description,
        "slug": pipeline.slug,
        "repository": pipeline.repository,
        "cluster_id": None,
        "cluster_url": None,
        "pipeline_template_uuid": None,
        "branch_configuration": pipeline.branch_configuration,
        "default_branch": pipeline.default_branch,
        "skip_queued_branch_builds": bool(pipeline.settings.get("skip_queued_branch_builds")),
        "skip_queued_branch_builds_filter": pipeline.settings.get(
            "skip_queued_branch_builds_filter"
        ),
        "cancel_running_branch_builds": bool(pipeline.settings.get("cancel_running_branch_builds")),
        "cancel_running_branch_builds_filter": pipeline.settings.get(
            "cancel_running_branch_builds_filter"
        ),
        "allow_rebuilds": pipeline.settings.get("allow_rebuilds", True),
        "provider": {
            "id": providers.provider_id(pipeline.repository, pipeline.settings),
            "webhook_url": webhook_url(urls, pipeline) if show_webhook_url else "",
            "settings": providers.provider_settings(pipeline.settings, pipeline.repository),
        },
        "builds_url": f"{url}/builds",
        "badge_url": urls.badge(pipeline.badge_key),
        "created_by": user_json(creator),
        "created_at": iso(pipeline.created_at),
        "archived_at": iso(pipeline.archived_at),
        "env": pipeline.env or None,
        "scheduled_builds_count": counts.scheduled_builds_count,
        "running_builds_count": counts.running_builds_count,
        "scheduled_jobs_count": counts.scheduled_jobs_count,
        "running_jobs_count": counts.running_jobs_count,
        "waiting_jobs_count": counts.waiting_jobs_count,
        "visibility": pipeline.visibility,
        "tags": pipeline.settings.get("tags"),
        "configuration": pipeline.configuration,
        "steps": _rest_steps(pipeline.configuration),
    }


def webhook_url(urls: Urls, pipeline: Pipeline) -> str:
    """Where the pipeline's code host sends its events: the token is the secret."""
    return urls.web(f"deliver/{pipeline.webhook_token}") if pipeline.webhook_token else ""


async def render_pipelines(
    session: AsyncSession,
    urls: Urls,
    org_slug: str,
    pipelines: list[Pipeline],
    *,
    show_webhook_url: bool = False,
) -> list[dict[str, Any]]:
    """`show_webhook_url`: the caller may edit pipelines (Buildkite shows the URL only then)."""
    creators = await users.get_many(
        session, {p.created_by_id for p in pipelines if p.created_by_id is not None}
    )
    counts = await builds_service.counts_for_pipelines(session, [p.id for p in pipelines])
    for pipeline in pipelines:
        configuration = pipeline.configuration
        if len(configuration) >= offload.LARGE_TEXT and configuration not in _large_rest_steps:
            # Parsed in a process: a pipeline of thousands of steps takes seconds.
            _large_rest_steps[configuration] = await offload.in_process(
                _rest_steps_of, configuration
            )
            while len(_large_rest_steps) > LARGE_CACHED:
                _large_rest_steps.pop(next(iter(_large_rest_steps)))
    return [
        pipeline_json(
            urls,
            org_slug,
            pipeline,
            creator=creators.get(pipeline.created_by_id) if pipeline.created_by_id else None,
            counts=counts.get(pipeline.id, builds_service.PipelineCounts()),
            show_webhook_url=show_webhook_url,
        )
        for pipeline in pipelines
    ]


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


class PipelineUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
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
    skip_queued_branch_builds: bool | None = None
    skip_queued_branch_builds_filter: str | None = None
    cancel_running_branch_builds: bool | None = None
    cancel_running_branch_builds_filter: str | None = None
    allow_rebuilds: bool | None = None
    tags: list[str] | None = None


PIPELINE = "/organizations/{org}/pipelines/{slug}"


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
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await service.get(session, organization_id=organization.id, slug=slug)
        await service.update(session, pipeline, body.model_dump(exclude_unset=True))
        return await _render_one(session, request, org, pipeline, principal)


@router.delete(PIPELINE, status_code=204)
@router.delete(PIPELINE + "/", status_code=204, include_in_schema=False)
async def delete_pipeline(request: Request, org: str, slug: str) -> Response:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await service.get(session, organization_id=organization.id, slug=slug)
        await service.delete(session, pipeline)
    return Response(status_code=204)


@router.post(PIPELINE + "/archive")
async def archive_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await service.get(session, organization_id=organization.id, slug=slug)
        service.archive(pipeline)
        return await _render_one(session, request, org, pipeline, principal)


@router.post(PIPELINE + "/unarchive")
async def unarchive_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    async with api_transaction(request, "write_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await service.get(session, organization_id=organization.id, slug=slug)
        service.unarchive(pipeline)
        return await _render_one(session, request, org, pipeline, principal)


@router.get("/organizations/{org}/pipelines/{slug}")
@router.get("/organizations/{org}/pipelines/{slug}/", include_in_schema=False)
async def get_pipeline(request: Request, org: str, slug: str) -> dict[str, Any]:
    async with api_transaction(request, "read_pipelines") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        pipeline = await service.get(session, organization_id=organization.id, slug=slug)
        return await _render_one(session, request, org, pipeline, principal)
