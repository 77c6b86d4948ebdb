"""Agent API authentication: `Authorization: Token <registration | access | job token>`."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.service import Agent
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job
from kiteline.server.kit.errors import NotFound, Unauthorized
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.secrets import hash_token
from kiteline.server.tokens import service as tokens
from kiteline.server.tokens.service import AgentToken


def agent_token_from(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        raise Unauthorized("Missing agent token: send `Authorization: Token <token>`")
    return value.strip()


async def registration(session: AsyncSession, request: Request) -> AgentToken:
    found = await tokens.authenticate_agent_token(session, agent_token_from(request))
    if found is None:
        raise Unauthorized("Invalid agent registration token")
    return found


async def agent(session: AsyncSession, request: Request) -> Agent:
    found = await agents.authenticate(session, agent_token_from(request))
    if found is None:
        raise Unauthorized("Invalid agent access token")
    agents.touch(found)
    return found


async def caller(session: AsyncSession, request: Request) -> agents.Caller:
    """The calling agent's columns that ping and accept need (it is marked seen)."""
    found = await agents.identify(session, agent_token_from(request))
    if found is None:
        raise Unauthorized("Invalid agent access token")
    return found


async def caller_unmarked(session: AsyncSession, request: Request) -> agents.Caller:
    """As `caller`, not marked seen (a read-only transaction: the caller notes the sighting)."""
    found = await agents.find_caller(session, agent_token_from(request))
    if found is None:
        raise Unauthorized("Invalid agent access token")
    return found


async def job_ref(session: AsyncSession, request: Request, job_id: str) -> jobs.JobRef:
    """The job named in the path, for its own job token or the access token of its agent."""
    token = agent_token_from(request)
    parsed = parse_uuid(job_id)
    found = await jobs.find_ref(session, parsed) if parsed is not None else None
    if found is not None and found.token_hash == hash_token(token):
        await agents.seen_through_job(session, found.agent_id)
        return found
    # The token is checked before the job's existence is told: a caller without a valid
    # token learns nothing of which job ids exist (401 either way).
    owner = await agents.identify(session, token)
    if owner is None:
        raise Unauthorized("Invalid agent or job access token")
    if found is None or found.agent_id != owner.id:
        raise NotFound.of("job")
    return found


async def job_of_token(session: AsyncSession, request: Request) -> Job | None:
    """The job whose token the request carries (its agent marked seen), or None."""
    found = await jobs.get_by_token(session, agent_token_from(request))
    if found is not None:
        await agents.seen_through_job(session, found.agent_id)
    return found


async def job(session: AsyncSession, request: Request, job_id: str) -> Job:
    """As `job_ref`, the whole job loaded."""
    return await jobs.get(session, (await job_ref(session, request, job_id)).id)
