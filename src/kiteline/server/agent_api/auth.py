"""Agent API authentication: `Authorization: Token <registration | access | job token>`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.service import Agent
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job
from kiteline.server.kit.db import execute_core, utcnow
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


# The caller's columns and the job it holds, in one statement (built once).
_CALLER_AND_HELD = select(
    *(getattr(Agent, name) for name in agents.Caller._fields), *jobs.held_columns(Agent.id)
).where(Agent.access_token_hash == bindparam("token_hash"))


async def caller_and_held(
    session: AsyncSession, request: Request
) -> tuple[agents.Caller, jobs.Held | None]:
    """As `caller`, with the job the agent holds (for `jobs.claim_next(held=…)`)."""
    row = (
        await execute_core(
            session, _CALLER_AND_HELD, {"token_hash": hash_token(agent_token_from(request))}
        )
    ).first()
    if row is None:
        raise Unauthorized("Invalid agent access token")
    columns: tuple[Any, ...] = tuple(row)
    found = agents.Caller._make(columns[:-2])
    await agents.mark_seen_if_due(session, found)
    held_id, held_state = columns[-2:]
    return found, jobs.Held(held_id, held_state) if held_id is not None else None


async def caller_unmarked(session: AsyncSession, request: Request) -> agents.Caller:
    """As `caller`, not marked seen (a read-only transaction: the caller notes the sighting)."""
    found = await agents.find_caller(session, agent_token_from(request))
    if found is None:
        raise Unauthorized("Invalid agent access token")
    return found


# The job's ref and when its agent was last seen, in one statement (built once): a job's
# calls mark its agent seen only when that is due (agents.SEEN_RESOLUTION).
_REF_AND_SEEN = (
    select(*(getattr(Job, name) for name in jobs.JobRef._fields), Agent.last_seen_at)
    .outerjoin(Agent, Agent.id == Job.agent_id)
    .where(Job.id == bindparam("job_id"))
)
# As `_REF_AND_SEEN`, with its build's state and `blocked` (a start needs them).
_REF_SEEN_AND_STANDING = _REF_AND_SEEN.add_columns(
    *build_transitions.standing_columns(Job.build_id)
)


async def job_ref(
    session: AsyncSession, request: Request, job_id: str, *, mark_seen: bool = True
) -> jobs.JobRef:
    """The job named in the path, for its own job token or the access token of its agent.
    Called with the job's token, its agent is marked seen unless `mark_seen` is False (the
    caller writes the agent's row anyway: `agents.record_job_finished`)."""
    found, _ = await _job_ref(session, request, job_id, _REF_AND_SEEN, mark_seen=mark_seen)
    return found


async def job_ref_and_standing(
    session: AsyncSession, request: Request, job_id: str
) -> tuple[jobs.JobRef, tuple[str, bool]]:
    """As `job_ref`, with its build's state and `blocked` read in the same statement (for
    `build_transitions.start_job(standing=…)`)."""
    found, row = await _job_ref(session, request, job_id, _REF_SEEN_AND_STANDING)
    if row is None:  # the job's agent's token, but no such job: `_job_ref` raised already
        raise NotFound.of("job")
    return found, (row[-2], row[-1])


async def _job_ref(
    session: AsyncSession, request: Request, job_id: str, query: Any, *, mark_seen: bool = True
) -> tuple[jobs.JobRef, Any]:
    token = agent_token_from(request)
    parsed = parse_uuid(job_id)
    row = (
        (await execute_core(session, query, {"job_id": parsed})).first()
        if parsed is not None
        else None
    )
    size = len(jobs.JobRef._fields)
    found = jobs.JobRef._make(row[:size]) if row is not None else None
    if row is not None and found is not None and found.token_hash == hash_token(token):
        seen = row[size]
        if mark_seen and found.agent_id is not None and agents.seen_is_due_at(seen, utcnow()):
            await agents.seen_through_job(session, found.agent_id)
        return found, row
    # The token is checked before the job's existence is told: a caller without a valid
    # token learns nothing of which job ids exist (401 either way).
    owner = await agents.identify(session, token)
    if owner is None:
        raise Unauthorized("Invalid agent or job access token")
    if found is None or found.agent_id != owner.id:
        raise NotFound.of("job")
    return found, row


async def job_of_token(session: AsyncSession, request: Request) -> Job | None:
    """The job whose token the request carries (its agent marked seen), or None."""
    found = await jobs.get_by_token(session, agent_token_from(request))
    if found is not None:
        await agents.seen_through_job(session, found.agent_id)
    return found


async def job(session: AsyncSession, request: Request, job_id: str) -> Job:
    """As `job_ref`, the whole job loaded."""
    return await jobs.get(session, (await job_ref(session, request, job_id)).id)
