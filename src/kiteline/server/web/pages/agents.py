"""`/organizations/{org}/agents` (the connected agents, live) and
`/organizations/{org}/agents/{id}` (one agent, its recent jobs, "Stop Agent")."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.service import Agent
from kiteline.server.agents.stop import stop
from kiteline.server.builds import repository as build_repository
from kiteline.server.events import outbox
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines
from kiteline.server.web.auth import Viewer, page_transaction
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

AGENTS = "/organizations/{org}/agents"
AGENT = AGENTS + "/{agent_id}"
AGENTS_PER_PAGE = 500
RECENT_JOBS = 10


@dataclass(frozen=True)
class JobLink:
    """A job as an agent's pages link to it: its row on its build's page (`#<job id>`)."""

    id: uuid.UUID
    label: str
    state: str
    url: str
    build_label: str


async def job_links(
    session: AsyncSession, organization: Organization, found: Sequence[Job]
) -> dict[uuid.UUID, JobLink]:
    """Links to these jobs' rows, their builds and pipelines each read once."""
    build_rows = await build_repository.get_many(session, {job.build_id for job in found})
    pipeline_rows = await pipelines.get_many(session, {b.pipeline_id for b in build_rows.values()})
    links: dict[uuid.UUID, JobLink] = {}
    for job in found:
        build = build_rows.get(job.build_id)
        pipeline = pipeline_rows.get(build.pipeline_id) if build else None
        if build is None or pipeline is None or pipeline.organization_id != organization.id:
            continue
        path = f"/{organization.slug}/{pipeline.slug}/builds/{build.number}"
        links[job.id] = JobLink(
            id=job.id,
            label=job.label or job.command or job.type,
            state=job.state,
            url=f"{path}#{job.id}",
            build_label=f"{pipeline.name} #{build.number}",
        )
    return links


async def _agent(session: AsyncSession, viewer: Viewer, org: str, agent_id: str) -> Agent:
    """The agent as REST finds it, for a member of its organization (another's: 404)."""
    organization = viewer.organization(org)
    parsed = parse_uuid(agent_id)
    if parsed is None:
        raise NotFound.of("agent")
    return await agents.get(session, organization_id=organization.id, agent_id=parsed)


@router.get(AGENTS)
async def agents_page(request: Request, org: str) -> Response:
    """Connected and stopping agents, as REST lists them; refreshed live on the
    organization's events (an agent connecting or stopping, a job starting or finishing)."""
    async with page_transaction(request) as (session, viewer):
        organization = viewer.organization(org)
        listed, total = await agents.list_connected(
            session,
            organization_id=organization.id,
            name=None,
            hostname=None,
            version=None,
            offset=0,
            limit=AGENTS_PER_PAGE,
        )
        current = await jobs.current_for_agents(session, [agent.id for agent in listed])
        links = await job_links(session, organization, list(current.values()))
        position = await outbox.latest_id(session)
        return render(
            request,
            "agents/index.html",
            viewer=viewer,
            organization=organization,
            agents=listed,
            total=total,
            current={agent_id: links.get(job.id) for agent_id, job in current.items()},
            live_position=position,
        )


@router.get(AGENT)
async def agent_page(request: Request, org: str, agent_id: str) -> Response:
    async with page_transaction(request) as (session, viewer):
        agent = await _agent(session, viewer, org, agent_id)
        organization = viewer.organization(org)
        current = await jobs.current_for_agent(session, agent.id)
        recent = await jobs.recent_for_agent(session, agent.id, RECENT_JOBS)
        links = await job_links(session, organization, [*recent, *([current] if current else [])])
        position = await outbox.latest_id(session)
        return render(
            request,
            "agents/show.html",
            viewer=viewer,
            organization=organization,
            agent=agent,
            current=links.get(current.id) if current else None,
            recent=[links[job.id] for job in recent if job.id in links],
            live_position=position,
        )


@router.post(AGENT + "/stop")
async def stop_agent(request: Request, org: str, agent_id: str) -> Response:
    """REST's PUT …/agents/{id}/stop: forced unless "Stop after the current job" is ticked."""
    form = await request.form()
    graceful = form.get("graceful") == "true"
    async with page_transaction(request) as (session, viewer):
        agent = await _agent(session, viewer, org, agent_id)
        await stop(session, agent, force=not graceful)
    return RedirectResponse(f"/organizations/{org}/agents/{agent.id}", status_code=303)
