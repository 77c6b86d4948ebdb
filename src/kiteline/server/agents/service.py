"""Agents: registration, connection state, liveness and lookup."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents.models import Agent
from kiteline.server.agents.states import ALIVE, ConnectionState
from kiteline.server.events import service as events
from kiteline.server.events.names import EventName
from kiteline.server.kit.db import NamesById, after_commit, execute_core, get_or_not_found, utcnow
from kiteline.server.kit.errors import BadRequest, NotFound
from kiteline.server.kit.notify import dispatch
from kiteline.server.kit.secrets import generate_token, hash_token
from kiteline.server.kit.text_search import contains
from kiteline.server.tokens.service import AgentToken


@dataclass(frozen=True)
class Registration:
    name: str = ""
    hostname: str | None = None
    os: str | None = None
    arch: str | None = None
    version: str | None = None
    build: str | None = None
    pid: int | None = None
    priority: int | None = None
    meta_data: list[str] = field(default_factory=list)
    ignore_in_dispatches: bool = False
    ip_address: str | None = None
    user_agent: str | None = None


def _agent_name(requested: str, hostname: str | None) -> str:
    """Substitute `%hostname` (and a stray `%spawn`) as buildkite.com does; invent one if empty."""
    host = hostname or "agent"
    name = requested.replace("%hostname", host).replace("%spawn", "1")
    name = re.sub(r"%[a-z_]+", "", name).strip()
    return name or f"{host}-{secrets.token_hex(3)}"


def emit_agent_event(session: AsyncSession, name: EventName, agent: Agent) -> None:
    events.emit(
        session,
        name,
        organization_id=agent.organization_id,
        subject_id=agent.id,
        data={"agent_id": str(agent.id), "connection_state": agent.connection_state},
    )


async def register(
    session: AsyncSession, *, agent_token: AgentToken, registration: Registration
) -> tuple[Agent, str]:
    """A new agent row and its access token (shown once, stored as a hash)."""
    access_token = generate_token("bkaa_")
    tags = [tag.strip() for tag in registration.meta_data if tag.strip()]
    if not any(tag.startswith("queue=") for tag in tags):
        tags.append("queue=default")  # an agent without a queue serves the default one
    agent = Agent(
        organization_id=agent_token.organization_id,
        agent_token_id=agent_token.id,
        name=_agent_name(registration.name, registration.hostname),
        hostname=registration.hostname,
        os=registration.os,
        arch=registration.arch,
        version=registration.version,
        build_number=registration.build,
        pid=registration.pid,
        priority=registration.priority,
        meta_data=tags,
        ignore_in_dispatches=registration.ignore_in_dispatches,
        ip_address=registration.ip_address,
        user_agent=registration.user_agent,
        access_token_hash=hash_token(access_token),
        connection_state=ConnectionState.NEVER_CONNECTED,
        last_seen_at=utcnow(),
    )
    session.add(agent)
    await session.flush()
    return agent, access_token


async def authenticate(session: AsyncSession, access_token: str) -> Agent | None:
    return await session.scalar(
        select(Agent).where(Agent.access_token_hash == hash_token(access_token))
    )


def touch(agent: Agent) -> None:
    agent.last_seen_at = utcnow()


class Caller(NamedTuple):
    """The columns of an agent that its own hot calls (ping, accept, job calls) need, read
    without loading the whole row into the session."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    connection_state: str
    meta_data: list[str]
    ignore_in_dispatches: bool
    last_seen_at: datetime | None


# Built once, with parameters: constructing a statement costs about as much as running it.
_CALLER = select(*(getattr(Agent, name) for name in Caller._fields)).where(
    Agent.access_token_hash == bindparam("token_hash")
)
_SEEN = update(Agent).where(Agent.id == bindparam("agent_id")).values(last_seen_at=bindparam("now"))

#: `last_seen_at` is written at most this often by an agent's calls: an agent makes several
#: calls per job, and the only reader that needs it is the sweep for agents silent for minutes.
SEEN_RESOLUTION = timedelta(seconds=1)


_SEEN_IF_STALE = (
    update(Agent)
    .where(
        Agent.id == bindparam("agent_id"),
        or_(Agent.last_seen_at.is_(None), Agent.last_seen_at <= bindparam("stale_at")),
    )
    .values(last_seen_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def seen_through_job(session: AsyncSession, agent_id: uuid.UUID | None) -> None:
    """The agent running a job is alive while the job's own calls reach the server (log
    chunks, state polls, meta-data, annotations, artifact and pipeline uploads, all made with
    the job's token): marked seen as `identify` marks it, at most once per SEEN_RESOLUTION,
    by one conditional statement that writes nothing when the mark is recent."""
    if agent_id is None:
        return
    now = utcnow()
    await execute_core(
        session,
        _SEEN_IF_STALE,
        {"agent_id": agent_id, "stale_at": now - SEEN_RESOLUTION, "now": now},
    )


async def identify(session: AsyncSession, access_token: str) -> Caller | None:
    """The agent with this access token, marked seen (see SEEN_RESOLUTION), or None."""
    caller = await find_caller(session, access_token)
    if caller is None:
        return None
    await mark_seen_if_due(session, caller)
    return caller


async def mark_seen_if_due(session: AsyncSession, caller: Caller) -> None:
    """Mark the calling agent seen now, when its mark is older than SEEN_RESOLUTION."""
    now = utcnow()
    if seen_is_due(caller, now):
        await execute_core(session, _SEEN, {"agent_id": caller.id, "now": now})


async def find_caller(session: AsyncSession, access_token: str) -> Caller | None:
    """The agent with this access token, or None; not marked seen (the caller does that)."""
    row = (await execute_core(session, _CALLER, {"token_hash": hash_token(access_token)})).first()
    return Caller._make(row) if row is not None else None


def seen_is_due(caller: Caller, now: datetime) -> bool:
    return seen_is_due_at(caller.last_seen_at, now)


def seen_is_due_at(last_seen_at: datetime | None, now: datetime) -> bool:
    return last_seen_at is None or now - last_seen_at >= SEEN_RESOLUTION


async def mark_seen_at(session: AsyncSession, sightings: dict[uuid.UUID, datetime]) -> None:
    """Agents seen at these times (`Sightings`' flush): each `last_seen_at` only moves on."""
    connection = await session.connection()
    await connection.execute(
        _SEEN_IF_STALE,
        [{"agent_id": agent_id, "stale_at": at, "now": at} for agent_id, at in sightings.items()],
    )


def connect(session: AsyncSession, agent: Agent) -> None:
    now = utcnow()
    agent.connection_state = ConnectionState.CONNECTED
    agent.connected_at = now
    agent.last_seen_at = now
    emit_agent_event(session, EventName.AGENT_CONNECTED, agent)


def disconnect(session: AsyncSession, agent: Agent) -> None:
    now = utcnow()
    stopping = agent.connection_state == ConnectionState.STOPPING
    agent.connection_state = ConnectionState.STOPPED if stopping else ConnectionState.DISCONNECTED
    agent.disconnected_at = now
    if stopping:
        agent.stopped_at = now
    emit_agent_event(
        session, EventName.AGENT_STOPPED if stopping else EventName.AGENT_DISCONNECTED, agent
    )


def heartbeat(agent: Agent) -> None:
    now = utcnow()
    agent.last_heartbeat_at = now
    agent.last_seen_at = now


async def get(session: AsyncSession, *, organization_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.organization_id != organization_id:
        raise NotFound.of("agent")
    return agent


# Built once: lists of builds read their jobs' agents with it.
_BY_IDS = select(Agent).where(Agent.id.in_(bindparam("ids", expanding=True)))


# The agents' ids and names only (`get_many` loads whole rows).
names = NamesById(Agent.id, Agent.name)


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Agent]:
    if not ids:
        return {}
    rows = await session.scalars(_BY_IDS, {"ids": list(ids)})
    return {row.id: row for row in rows}


async def load(session: AsyncSession, agent_id: uuid.UUID) -> Agent:
    return await get_or_not_found(session, Agent, agent_id, "agent")


async def find(session: AsyncSession, agent_id: uuid.UUID | None) -> Agent | None:
    """The agent with this id, or None (for a job no agent has taken)."""
    return await session.get(Agent, agent_id) if agent_id is not None else None


def request_stop(session: AsyncSession, agent: Agent) -> None:
    """Mark the agent `stopping`: its next ping tells it to disconnect (after its job ends).
    Held pings are woken so that an idle agent hears it at once, not at its next poll."""
    if agent.connection_state != ConnectionState.CONNECTED:
        raise BadRequest("Can only stop connected agents")
    agent.connection_state = ConnectionState.STOPPING
    agent.stop_requested = True
    emit_agent_event(session, EventName.AGENT_STOPPING, agent)
    after_commit(session, dispatch.notify)


async def list_connected(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    name: str | None,
    hostname: str | None,
    version: str | None,
    offset: int,
    limit: int,
) -> tuple[list[Agent], int]:
    """Connected and stopping agents, as Buildkite lists them; `name` may use `*` globs."""
    query = select(Agent).where(
        Agent.organization_id == organization_id,
        Agent.connection_state.in_(ALIVE),
    )
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Agent.name.like(escaped.replace("*", "%"), escape="\\"))
    if hostname:
        query = query.where(Agent.hostname == hostname)
    if version:
        query = query.where(Agent.version == version)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Agent.name, Agent.created_at).offset(offset).limit(limit)
    )
    return list(rows), total


_JOB_FINISHED = (
    update(Agent)
    .where(Agent.id == bindparam("agent_id"))
    .values(last_job_finished_at=bindparam("now"), last_seen_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def record_job_finished(session: AsyncSession, agent_id: uuid.UUID | None) -> None:
    """The agent finished a job now, and so was seen now (its finish call marks it no
    other way: one statement for both)."""
    if agent_id is not None:
        await execute_core(session, _JOB_FINISHED, {"agent_id": agent_id, "now": utcnow()})


async def silent_since(session: AsyncSession, cutoff: datetime) -> list[Agent]:
    """Connected (or stopping) agents not heard from since `cutoff`."""
    query = select(Agent).where(Agent.connection_state.in_(ALIVE), Agent.last_seen_at < cutoff)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(await session.scalars(query))


def mark_lost(session: AsyncSession, agent: Agent) -> None:
    agent.connection_state = ConnectionState.LOST
    agent.lost_at = utcnow()
    emit_agent_event(session, EventName.AGENT_LOST, agent)


async def connected_for_organizations(
    session: AsyncSession,
    organization_ids: Sequence[uuid.UUID],
    *,
    search: str | None = None,
    meta_data: Sequence[str] = (),
) -> dict[uuid.UUID, list[Agent]]:
    """Each organization's connected (and stopping) agents by name, as `list_connected` lists
    them; `search` matches part of the name or hostname, `meta_data` tags must all be present."""
    grouped: dict[uuid.UUID, list[Agent]] = {org_id: [] for org_id in organization_ids}
    if not grouped:
        return grouped
    query = select(Agent).where(
        Agent.organization_id.in_(list(grouped)),
        Agent.connection_state.in_(ALIVE),
    )
    if search:
        query = query.where(or_(contains(Agent.name, search), contains(Agent.hostname, search)))
    rows = await session.scalars(query.order_by(Agent.name, Agent.created_at, Agent.id))
    for agent in rows:
        if all(tag in agent.meta_data for tag in meta_data):
            grouped[agent.organization_id].append(agent)
    return grouped


async def counts_by_connection_state(session: AsyncSession) -> dict[str, int]:
    """`{connection_state: count}` of every agent, for the metrics."""
    rows = await session.execute(
        select(Agent.connection_state, func.count()).group_by(Agent.connection_state)
    )
    return {state: count for state, count in rows}
