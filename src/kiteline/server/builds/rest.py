"""/v2 build routes (create, get, list, cancel) and the Build JSON."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.shapes import agent_json
from kiteline.server.builds import service
from kiteline.server.builds.models import Build
from kiteline.server.builds.query import ListOptions, truthy
from kiteline.server.builds.service import BuildListing
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.rest import job_json_at, rest_state
from kiteline.server.jobs.service import JobListing
from kiteline.server.kit.auth import Principal, api_transaction
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.pipelines.rest import render_pipelines
from kiteline.server.users import service as users
from kiteline.server.users.rest import user_json

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


async def render_builds(
    session: AsyncSession,
    urls: Urls,
    builds: Sequence[Build | BuildListing],
    *,
    org_slugs: dict[uuid.UUID, str],
    include_jobs: bool = True,
    include_pipeline: bool = True,
    include_job_state_counts: bool = False,
    include_retried_jobs: bool = False,
) -> list[dict[str, Any]]:
    """Build JSON for many builds with a fixed number of queries, whatever their count.

    A list renders a hundred builds with their jobs on every request, so what several of them
    share (URL prefixes, users, agents, the pipeline) is rendered once, and nested objects may
    be shared between builds: serialize the result, don't edit it in place.
    """
    build_ids = [build.id for build in builds]
    pipeline_rows = await pipelines.get_many(session, {build.pipeline_id for build in builds})
    jobs_by_build = await jobs_service.list_for_builds(session, build_ids)
    all_jobs = [job for jobs in jobs_by_build.values() for job in jobs]
    agent_rows = await agents.get_many(session, {j.agent_id for j in all_jobs if j.agent_id})
    creators = await users.get_many(
        session,
        {b.creator_id for b in builds if b.creator_id}
        | {j.unblocked_by_id for j in all_jobs if j.unblocked_by_id},
    )
    meta_data = await service.meta_data_for(session, build_ids)
    # Builds these ones point at (rebuilt from, triggered, triggered from), fetched together.
    parent_jobs = await jobs_service.get_many(
        session, {b.triggered_from_job_id for b in builds if b.triggered_from_job_id}
    )
    related = await service.get_many(
        session,
        {b.rebuilt_from_id for b in builds if b.rebuilt_from_id}
        | {j.triggered_build_id for j in all_jobs if j.triggered_build_id}
        | {j.build_id for j in parent_jobs.values()},
    )
    pipeline_rows.update(
        await pipelines.get_many(
            session, {b.pipeline_id for b in related.values()} - set(pipeline_rows)
        )
    )
    users_shown = {user_id: user_json(user) for user_id, user in creators.items()}
    build_urls = {
        pipeline.id: (
            urls.builds(org_slugs.get(pipeline.organization_id, ""), pipeline.slug),
            urls.builds_web(org_slugs.get(pipeline.organization_id, ""), pipeline.slug),
        )
        for pipeline in pipeline_rows.values()
    }

    def reference(build_id: uuid.UUID | None) -> dict[str, Any] | None:
        other = related.get(build_id) if build_id else None
        if other is None:
            return None
        api, web = build_urls[other.pipeline_id]
        return {
            "id": str(other.id),
            "number": other.number,
            "url": f"{api}{other.number}",
            "web_url": f"{web}{other.number}",
            "pipeline_slug": pipeline_rows[other.pipeline_id].slug,
        }

    pipeline_json: dict[uuid.UUID, dict[str, Any]] = {}
    if include_pipeline:
        # The listed builds' own pipelines, one rendering (and set of queries) per organization.
        by_organization: dict[uuid.UUID, list[Pipeline]] = {}
        for pipeline_id in dict.fromkeys(build.pipeline_id for build in builds):
            pipeline = pipeline_rows[pipeline_id]
            by_organization.setdefault(pipeline.organization_id, []).append(pipeline)
        for organization_id, group in by_organization.items():
            shown = await render_pipelines(session, urls, org_slugs[organization_id], group)
            pipeline_json.update(zip([p.id for p in group], shown, strict=True))
    agents_shown: dict[uuid.UUID, dict[str, Any]] = {}
    rendered = []
    for build in builds:
        org_slug = org_slugs[build.organization_id]
        api, web = build_urls[build.pipeline_id]
        url, web_url = f"{api}{build.number}", f"{web}{build.number}"
        body = build_json(build, url, web_url)
        body["creator"] = users_shown.get(build.creator_id) if build.creator_id else None
        body["meta_data"] = meta_data.get(build.id, {})
        origin = reference(build.rebuilt_from_id)
        body["rebuilt_from"] = (
            {key: origin[key] for key in ("id", "number", "url")} if origin else None
        )
        parent_job = (
            parent_jobs.get(build.triggered_from_job_id) if build.triggered_from_job_id else None
        )
        parent = reference(parent_job.build_id) if parent_job else None
        body["triggered_from"] = (
            {
                "build_id": parent["id"],
                "build_number": parent["number"],
                "build_pipeline_slug": parent["pipeline_slug"],
            }
            if parent
            else None
        )
        jobs = [
            job
            for job in jobs_by_build.get(build.id, [])
            if include_retried_jobs or not job.retried
        ]
        if include_jobs:
            shown = []
            for job in jobs:
                agent = None
                if job.agent_id and job.agent_id in agent_rows:
                    agent = agents_shown.get(job.agent_id)
                    if agent is None:
                        agent = agents_shown[job.agent_id] = agent_json(
                            urls, org_slug, agent_rows[job.agent_id]
                        )
                shown.append(
                    job_json_at(
                        url,
                        web_url,
                        job,
                        agent=agent,
                        triggered_build=reference(job.triggered_build_id),
                        unblocked_by=(
                            users_shown.get(job.unblocked_by_id) if job.unblocked_by_id else None
                        ),
                    )
                )
            body["jobs"] = shown
        if include_job_state_counts:
            body["job_state_counts"] = _job_state_counts(jobs)
        if include_pipeline:
            body["pipeline"] = pipeline_json[build.pipeline_id]
        rendered.append(body)
    return rendered


def _job_state_counts(jobs: list[JobListing]) -> dict[str, Any]:
    counts = Counter(rest_state(job) for job in jobs)
    return {"total": len(jobs), "states": dict(sorted(counts.items()))}


def build_json(build: Build | BuildListing, url: str, web_url: str) -> dict[str, Any]:
    return {
        "id": str(build.id),
        "graphql_id": graphql_id("Build", build.id),
        "url": url,
        "web_url": web_url,
        "number": build.number,
        "state": build.state,
        "blocked": build.blocked,
        "blocked_state": None,
        "cancel_reason": build.cancel_reason,
        "message": build.message,
        "commit": build.commit,
        "branch": build.branch,
        "tag": build.tag,
        "env": build.env,
        "source": build.source,
        "author": build.author or {},
        "created_at": iso(build.created_at),
        "scheduled_at": iso(build.scheduled_at),
        "started_at": iso(build.started_at),
        "failing_at": iso(build.failing_at),
        "finished_at": iso(build.finished_at),
        "pull_request": build.pull_request,
        "merge_queue": None,
        "cluster_id": None,
        "cluster_url": None,
    }


def json_response(body: Any) -> Response:
    """The bytes FastAPI would send for `body`, without its validating (and copying) the whole
    body against the `Any` return type first: a page of builds is large."""
    return Response(to_json(body), media_type="application/json")


async def _pipeline_for(
    session: AsyncSession, user_id: uuid.UUID, org: str, pipeline: str
) -> tuple[Organization, Pipeline]:
    organization = await organizations.get_for_user(session, slug=org, user_id=user_id)
    return organization, await pipelines.get(
        session, organization_id=organization.id, slug=pipeline
    )


def _build_number(number: str) -> int:
    if not number.isdigit():
        raise NotFound.of("build")
    return int(number)


async def locate_build(
    session: AsyncSession, principal: Principal, org: str, pipeline: str, number: str
) -> tuple[Organization, Pipeline, Build]:
    """The build at `…/pipelines/{pipeline}/builds/{number}` that this caller may see."""
    organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
    build = await service.get_by_number(session, pipeline_id=found.id, number=_build_number(number))
    return organization, found, build


BUILDS = "/organizations/{org}/pipelines/{pipeline}/builds"


@router.post(BUILDS, status_code=201)
@router.post(BUILDS + "/", status_code=201, include_in_schema=False)
async def create_build(
    request: Request, org: str, pipeline: str, body: BuildCreate
) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
        author = body.author.model_dump(exclude_none=True) if body.author else {}
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
        build = await service.create(
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
                author=author or {"name": principal.user.name, "email": principal.user.email},
                clean_checkout=body.clean_checkout,
                pull_request=pull_request,
            ),
        )
        (rendered,) = await render_builds(
            session, Urls(base_url(request)), [build], org_slugs={organization.id: org}
        )
    return rendered


@router.get(BUILDS + "/{number}")
@router.get(BUILDS + "/{number}/", include_in_schema=False)
async def get_build(request: Request, org: str, pipeline: str, number: str) -> Response:
    async with api_transaction(request, "read_builds") as (session, principal):
        organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
        build = await service.get_by_number(
            session, pipeline_id=found.id, number=_build_number(number)
        )
        query = request.query_params
        (rendered,) = await render_builds(
            session,
            Urls(base_url(request)),
            [build],
            org_slugs={organization.id: org},
            include_jobs=not truthy(query.get("exclude_jobs")),
            include_pipeline=not truthy(query.get("exclude_pipeline")),
            include_retried_jobs=truthy(query.get("include_retried_jobs")),
            include_job_state_counts=True,
        )
    return json_response(rendered)


@router.put(BUILDS + "/{number}/cancel")
async def cancel_build(request: Request, org: str, pipeline: str, number: str) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
        build = await service.get_by_number(
            session, pipeline_id=found.id, number=_build_number(number)
        )
        await service.cancel(session, build)
        (rendered,) = await render_builds(
            session, Urls(base_url(request)), [build], org_slugs={organization.id: org}
        )
    return rendered


@router.put(BUILDS + "/{number}/rebuild")
async def rebuild_build(request: Request, org: str, pipeline: str, number: str) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        organization, found = await _pipeline_for(session, principal.user_id, org, pipeline)
        original = await service.get_by_number(
            session, pipeline_id=found.id, number=_build_number(number)
        )
        build = await service.rebuild(
            session,
            organization=organization,
            pipeline=found,
            original=original,
            creator_id=principal.user_id,
        )
        (rendered,) = await render_builds(
            session, Urls(base_url(request)), [build], org_slugs={organization.id: org}
        )
    return rendered


async def _list_builds(
    request: Request, *, org: str | None = None, pipeline: str | None = None
) -> Response:
    """The three build lists share everything but their scope: all orgs, one org, a pipeline."""
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    options = ListOptions.from_request(request)
    async with api_transaction(request, "read_builds") as (session, principal):
        if org is None:
            organizations_seen = await organizations.list_for_user(session, principal.user_id)
        else:
            organizations_seen = [
                await organizations.get_for_user(session, slug=org, user_id=principal.user_id)
            ]
        pipeline_id = None
        if pipeline is not None:
            found = await pipelines.get(
                session, organization_id=organizations_seen[0].id, slug=pipeline
            )
            pipeline_id = found.id
        builds, has_next = await service.list_builds(
            session,
            organization_ids=[o.id for o in organizations_seen],
            pipeline_id=pipeline_id,
            where=options.where,
            offset=page.offset,
            limit=page.per_page,
        )
        body = await render_builds(
            session,
            urls,
            builds,
            org_slugs={o.id: o.slug for o in organizations_seen},
            include_jobs=not options.exclude_jobs,
            include_pipeline=not options.exclude_pipeline,
            include_retried_jobs=options.include_retried_jobs,
        )
    response = json_response(body)
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
