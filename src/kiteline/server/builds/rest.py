"""/v2 build routes (create, get, list, cancel, rebuild); their Build JSON is `rendering`'s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import listing, rendering, service, transitions
from kiteline.server.builds.locate import BUILDS, locate_build
from kiteline.server.builds.locate import pipeline_for as _pipeline_for
from kiteline.server.builds.models import Build
from kiteline.server.builds.query import ListOptions
from kiteline.server.builds.repository import BuildListing
from kiteline.server.kit.http import base_url
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.query import flag
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["builds"])


class Author(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    email: str | None = None
    username: str | None = None


class BuildCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    commit: str
    branch: str
    message: str | None = None
    author: Author | None = None
    env: dict[str, str] = Field(default_factory=dict)
    meta_data: dict[str, str] = Field(default_factory=dict)
    clean_checkout: bool = False
    ignore_pipeline_branch_filters: bool = False
    pull_request_base_branch: str | None = None
    pull_request_id: int | None = None
    pull_request_repository: str | None = None
    pull_request_labels: list[str] | None = None


async def _render_uncached(
    session: AsyncSession,
    urls: Urls,
    builds: Sequence[Build | BuildListing],
    *,
    org_slugs: dict[uuid.UUID, str],
    shape: rendering.Shape,
    pipelines_known: Sequence[Pipeline] = (),
) -> rendering.RenderedPage:
    """Builds rendered from their rows, the cache neither used nor filled (the transaction
    may have changed them, and may yet roll back)."""
    return await rendering.render(
        session,
        urls,
        await listing.listed_by_id(session, [build.id for build in builds]),
        org_slugs=org_slugs,
        shape=shape,
        cache=None,
        pipelines_known=pipelines_known,
    )


@router.post(BUILDS, status_code=201)
@router.post(BUILDS + "/", status_code=201, include_in_schema=False)
async def create_build(request: Request, org: str, pipeline: str, body: BuildCreate) -> Response:
    async with api_transaction(request, "write_builds") as (session, principal):
        organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
        author = body.author.model_dump(exclude_none=True) if body.author else None
        pull_request = (
            {
                "id": str(body.pull_request_id),
                "base": body.pull_request_base_branch,
                "repository": body.pull_request_repository,
                "labels": body.pull_request_labels or [],
            }
            if body.pull_request_id is not None
            else None
        )
        build, jobs = await service.create_with_jobs(
            session,
            organization=organization,
            pipeline=found,
            creator_id=principal.user_id,
            new=service.NewBuild(
                commit=body.commit,
                branch=body.branch,
                message=body.message,
                env=body.env,
                meta_data=body.meta_data,
                author=author or None,
                clean_checkout=body.clean_checkout,
                pull_request=pull_request,
            ),
        )
        if jobs is None:  # a large build: read back and rendered in slices
            return await _changed_build(
                request, session, org, organization, found, build, status=201
            )
        # Rendered from what was just written, not read back (four statements fewer).
        page = await rendering.render_created(
            session,
            Urls(base_url(request)),
            build,
            jobs,
            body.meta_data,
            org_slugs={organization.id: org},
            pipelines_known=[found],
        )
        (parts,) = await page.each_parts()
        return rendering.json_response(parts, status_code=201)


async def _changed_build(
    request: Request,
    session: AsyncSession,
    org: str,
    organization: Organization,
    pipeline: Pipeline,
    build: Build,
    *,
    status: int = 200,
) -> Response:
    """The answer to a call that changed `build`: its JSON as the transaction now has it."""
    page = await _render_uncached(
        session,
        Urls(base_url(request)),
        [build],
        org_slugs={organization.id: org},
        shape=rendering.Shape(),
        pipelines_known=[pipeline],
    )
    (parts,) = await page.each_parts()
    return rendering.json_response(parts, status_code=status)


@router.get(BUILDS + "/{number}")
@router.get(BUILDS + "/{number}/", include_in_schema=False)
async def get_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    async with api_transaction(request, "read_builds") as (session, principal):
        organization, found, build = await locate_build(session, principal, org, pipeline, number)
        query = request.query_params
        page = await rendering.render(
            session,
            Urls(base_url(request)),
            await listing.listed_by_id(session, [build.id]),
            org_slugs={organization.id: org},
            shape=rendering.Shape(
                include_jobs=not flag(query, "exclude_jobs"),
                include_pipeline=not flag(query, "exclude_pipeline"),
                include_retried_jobs=flag(query, "include_retried_jobs"),
                include_job_state_counts=True,
            ),
            cache=rendering.cache_of(request.app),
            pipelines_known=[found],
        )
        (parts,) = await page.each_parts()
    return rendering.json_response(parts)


@router.put(BUILDS + "/{number}/cancel")
async def cancel_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    async with api_transaction(request, "write_builds") as (session, principal):
        organization, found, build = await locate_build(session, principal, org, pipeline, number)
        await transitions.cancel(session, build=build)
        return await _changed_build(request, session, org, organization, found, build)


@router.put(BUILDS + "/{number}/rebuild")
async def rebuild_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    async with api_transaction(request, "write_builds") as (session, principal):
        located = await locate_build(session, principal, org, pipeline, number)
        organization, found, original = located
        build = await service.rebuild(
            session,
            organization=organization,
            pipeline=found,
            original=original,
            creator_id=principal.user_id,
        )
        return await _changed_build(request, session, org, organization, found, build)


async def _list_builds(
    request: Request, *, org: str | None = None, pipeline: str | None = None
) -> Response:
    """The three build lists share everything but their scope: all orgs, one org, a pipeline."""
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    options = ListOptions.from_request(request)
    async with api_transaction(request, "read_builds") as (session, principal):
        pipelines_known = []
        if org is None:
            organizations_seen = principal.visible(
                await organizations.list_for_user(session, principal.user_id)
            )
        elif pipeline is None:
            organizations_seen = [
                await organizations.get_for_user(session, slug=org, user_id=principal.user_id)
            ]
        else:
            organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
            organizations_seen, pipelines_known = [organization], [found]
        page_builds, has_next = await listing.list_page(
            session,
            organization_ids=[o.id for o in organizations_seen],
            pipeline_id=pipelines_known[0].id if pipelines_known else None,
            where=options.where,
            offset=page.offset,
            limit=page.per_page,
        )
        rendered = await rendering.render(
            session,
            urls,
            page_builds,
            org_slugs={o.id: o.slug for o in organizations_seen},
            shape=rendering.Shape(
                include_jobs=not options.exclude_jobs,
                include_pipeline=not options.exclude_pipeline,
                include_retried_jobs=options.include_retried_jobs,
            ),
            cache=rendering.cache_of(request.app),
            pipelines_known=pipelines_known,
        )
    response = rendering.json_response(await rendered.list_parts())
    add_link_header(response, request, urls.base, page, has_next=has_next)
    return response


@router.get(BUILDS)
@router.get(BUILDS + "/", include_in_schema=False)
async def list_pipeline_builds(request: Request, org: str, pipeline: str) -> Response:
    return await _list_builds(request, org=org, pipeline=pipeline)


@router.get("/organizations/{org}/builds")
@router.get("/organizations/{org}/builds/", include_in_schema=False)
async def list_organization_builds(request: Request, org: str) -> Response:
    return await _list_builds(request, org=org)


@router.get("/builds")
@router.get("/builds/", include_in_schema=False)
async def list_all_builds(request: Request) -> Response:
    return await _list_builds(request)
