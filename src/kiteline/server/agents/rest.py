"""/v2/organizations/{org}/agents: list, get, stop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service
from kiteline.server.agents.models import Agent
from kiteline.server.agents.shapes import agent_json
from kiteline.server.agents.stop import stop
from kiteline.server.builds import repository as build_repository
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.shapes import job_json
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["agents"])

AGENTS = "/organizations/{org}/agents"


class StopRequest(BaseModel):
    force: bool = True


async def _render(session: AsyncSession, urls: Urls, org: str, agent: Agent) -> dict[str, Any]:
    job = await jobs.current_for_agent(session, agent.id)
    rendered_job = None
    if job is not None:
        build = await build_repository.get_by_id(session, job.build_id)
        pipeline = await pipelines.get_by_id(session, build.pipeline_id)
        rendered_job = job_json(urls, org, pipeline.slug, build.number, job, None)
    return agent_json(urls, org, agent, rendered_job)


async def _agent(session: AsyncSession, org_id: Any, agent_id: str) -> Agent:
    parsed = parse_uuid(agent_id)
    if parsed is None:
        raise NotFound.of("agent")
    return await service.get(session, organization_id=org_id, agent_id=parsed)


@router.get(AGENTS)
@router.get(AGENTS + "/", include_in_schema=False)
async def list_agents(request: Request, response: Response, org: str) -> list[dict[str, Any]]:
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    query = request.query_params
    async with api_transaction(request, "read_agents") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        agents, total = await service.list_connected(
            session,
            organization_id=organization.id,
            name=query.get("name"),
            hostname=query.get("hostname"),
            version=query.get("version"),
            offset=page.offset,
            limit=page.per_page,
        )
        body = [await _render(session, urls, org, agent) for agent in agents]
    add_link_header(response, request, urls.base, page, total=total)
    return body


@router.get(AGENTS + "/{agent_id}")
@router.get(AGENTS + "/{agent_id}/", include_in_schema=False)
async def get_agent(request: Request, org: str, agent_id: str) -> dict[str, Any]:
    async with api_transaction(request, "read_agents") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        agent = await _agent(session, organization.id, agent_id)
        return await _render(session, Urls(base_url(request)), org, agent)


@router.put(AGENTS + "/{agent_id}/stop", status_code=204)
async def stop_agent(
    request: Request, org: str, agent_id: str, body: StopRequest | None = None
) -> Response:
    """Graceful (`force: false`) lets the current job finish; forced cancels it first."""
    force = True if body is None else body.force
    async with api_transaction(request, "write_agents") as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        agent = await _agent(session, organization.id, agent_id)
        await stop(session, agent, force=force)
    return Response(status_code=204)
