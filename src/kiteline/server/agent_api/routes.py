"""/v3: the Buildkite agent protocol, translated into service calls.

Paths, JSON keys and status codes follow buildkite-agent v3 so the real Go agent can use this
server as well as Kiteline's own. Pings long-poll when the agent asks (`?wait=N`): the request is
held until a job is assigned to it or N seconds pass.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agent_api import auth
from kiteline.server.agents import service as agents
from kiteline.server.agents.sightings import Sightings
from kiteline.server.agents.states import UNCONNECTED, ConnectionState
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs import transitions as job_transitions
from kiteline.server.jobs.environment import environment_for
from kiteline.server.jobs.states import ON_AGENT, JobState
from kiteline.server.kit.db import utcnow, writers_busy
from kiteline.server.kit.errors import BadRequest, NotFound
from kiteline.server.kit.http import base_url, request_transaction
from kiteline.server.kit.ids import INT32_MAX, parse_int
from kiteline.server.kit.instruments import Instruments
from kiteline.server.kit.notify import Ticket, dispatch
from kiteline.server.kit.timefmt import iso, parse_agent_time
from kiteline.server.kit.urls import Urls
from kiteline.server.logs import service as logs

router = APIRouter(tags=["agent"])


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""
    hostname: str | None = None
    os: str | None = None
    arch: str | None = None
    version: str | None = None
    build: str | None = None
    pid: int | None = None
    priority: str | int | None = None
    meta_data: list[str] = Field(default_factory=list)
    ignore_in_dispatches: bool = False
    script_eval_enabled: bool = True
    features: list[str] = Field(default_factory=list)


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    exit_status: str | int = Field(description="Decimal exit status, as a string")
    signal: str | None = None
    signal_reason: str | None = None
    finished_at: str | None = None
    chunks_failed_count: int = 0


def _timings(request: Request) -> dict[str, int]:
    settings = request.app.state.settings
    return {
        "ping_interval": max(settings.agent_ping_interval, 1),
        "job_status_interval": max(settings.agent_job_status_interval, 1),
        "heartbeat_interval": max(settings.agent_heartbeat_interval, 1),
    }


@router.post("/register")
async def register(request: Request, body: RegisterRequest) -> dict[str, Any]:
    async with request_transaction(request) as session:
        agent_token = await auth.registration(session, request)
        priority_text = str(body.priority or "").strip()
        priority = parse_int(priority_text, minimum=-INT32_MAX, maximum=INT32_MAX)
        agent, access_token = await agents.register(
            session,
            agent_token=agent_token,
            registration=agents.Registration(
                name=body.name,
                hostname=body.hostname,
                os=body.os,
                arch=body.arch,
                version=body.version,
                build=body.build,
                pid=body.pid,
                priority=priority,
                meta_data=body.meta_data,
                ignore_in_dispatches=body.ignore_in_dispatches,
                ip_address=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            ),
        )
    return {
        "id": str(agent.id),
        "name": agent.name,
        "access_token": access_token,
        "endpoint": "",
        "meta_data": agent.meta_data,
        **_timings(request),
    }


@router.post("/connect")
async def connect(request: Request) -> dict[str, Any]:
    return await _change_connection(request, agents.connect)


@router.post("/disconnect")
async def disconnect(request: Request) -> dict[str, Any]:
    return await _change_connection(request, agents.disconnect)


async def _change_connection(
    request: Request, change: Callable[[AsyncSession, agents.Agent], None]
) -> dict[str, Any]:
    async with request_transaction(request) as session:
        agent = await auth.agent(session, request)
        change(session, agent)
    return {"id": str(agent.id), "connection_state": agent.connection_state}


@router.post("/heartbeat")
async def heartbeat(request: Request) -> dict[str, Any]:
    body = await _json_object(request)
    async with request_transaction(request) as session:
        agent = await auth.agent(session, request)
        agents.heartbeat(agent)
    return {"sent_at": body.get("sent_at"), "received_at": iso(agent.last_heartbeat_at)}


@router.get("/ping", response_model=dict[str, Any])
async def ping(request: Request, wait: float = Query(0, allow_inf_nan=False)) -> Response:
    max_wait = request.app.state.settings.agent_ping_max_wait
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), max_wait)
    while True:
        ticket = dispatch.ticket()
        claim = None
        if not (writers_busy(request.app.state.sessions) and await _idle_by_reading(request)):
            async with request_transaction(request) as session:
                agent, held = await auth.caller_and_held(session, request)
                if agent.connection_state == ConnectionState.STOPPING:
                    await jobs.release_assigned(session, agent.id)
                    return _json({"action": "disconnect", "message": "The agent was asked to stop"})
                if agent.connection_state in UNCONNECTED:
                    agents.connect(session, await agents.load(session, agent.id))
                if not agent.ignore_in_dispatches:
                    claim = await jobs.claim_next(
                        session,
                        agent_id=agent.id,
                        organization_id=agent.organization_id,
                        tags=agent.meta_data,
                        held=held,
                    )
        if claim is not None:
            if claim.assigned_at is not None:  # committed: this ping assigned it
                _instruments(request).observe_dispatch(claim.runnable_at, claim.assigned_at)
            job = {"id": str(claim.job_id), "state": JobState.ASSIGNED.value}
            return _json({"action": "idle", "job": job})
        remaining = deadline - loop.time()
        if remaining <= 0 or not await _wait_for_work(request, ticket, remaining):
            return _json({"action": "idle"})


async def _idle_by_reading(request: Request) -> bool:
    """Whether the calling agent is connected with nothing to take, found by reading only (the
    sighting noted for `Sightings` to write): a ping that would otherwise wait behind a long
    SQLite write (a build of thousands of jobs) answers at once. False: the ping must write
    (a job to claim, a state to change), and queues as a writer."""
    async with request_transaction(request, read_only=True) as session:
        agent = await auth.caller_unmarked(session, request)
        if agent.connection_state != ConnectionState.CONNECTED:
            return False
        if not agent.ignore_in_dispatches and await jobs.may_claim(
            session,
            agent_id=agent.id,
            organization_id=agent.organization_id,
            tags=agent.meta_data,
        ):
            return False
    now = utcnow()
    if agents.seen_is_due(agent, now):
        sightings: Sightings = request.app.state.sightings
        sightings.note(agent.id, now)
    return True


async def _wait_for_work(request: Request, ticket: Ticket, seconds: float) -> bool:
    """Hold a ping until work may be there (True) or the agent hung up (False): a dropped
    long poll must not linger, or it would hold up the server's shutdown."""
    woken = asyncio.ensure_future(dispatch.wait(ticket, seconds))
    hung_up = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({woken, hung_up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        hung_up.cancel()
    return hung_up not in done


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.put("/jobs/{job_id}/accept", response_model=dict[str, Any])
async def accept(request: Request, job_id: str) -> Response:
    settings = request.app.state.settings
    async with request_transaction(request) as session:
        agent = await auth.caller(session, request)
        job, job_token = await job_transitions.accept(
            session, job_id=_uuid(job_id), agent_id=agent.id
        )
        env = await environment_for(session, job, agent, Urls(base_url(request)))
    return _json(
        {
            "id": str(job.id),
            "endpoint": f"{base_url(request)}/v3",
            "state": job.state,
            "env": env,
            "step": {},
            "chunks_max_size_bytes": settings.chunks_max_size_bytes,
            "chunks_interval_seconds": settings.chunks_interval_seconds,
            "log_max_size_bytes": 1024 * 1024 * 1024,
            "token": job_token,
            "runnable_at": iso(job.runnable_at),
            "priority": job.priority,
        }
    )


@router.put("/jobs/{job_id}/start", response_model=dict[str, Any])
async def start(request: Request, job_id: str) -> Response:
    body = await _json_object(request)
    async with request_transaction(request) as session:
        ref, standing = await auth.job_ref_and_standing(session, request, job_id)
        job = await build_transitions.start_job(
            session,
            job=ref,
            started_at=parse_agent_time(body.get("started_at")),
            standing=standing,
        )
    if ref.state == JobState.ACCEPTED:  # started now, not a start repeated
        # By the server's clock, as the job was scheduled: the agent's may be off.
        _instruments(request).observe_queue_wait(ref.scheduled_at, utcnow())
    return _json({"id": str(job.id), "state": job.state})


@router.get("/jobs/{job_id}", response_model=dict[str, Any])
async def job_state(request: Request, job_id: str) -> Response:
    async with request_transaction(request) as session:
        job = await auth.job_ref(session, request, job_id)
    return _json({"id": str(job.id), "state": job.state})


@router.post("/jobs/{job_id}/chunks", status_code=201)
async def upload_chunk(
    request: Request, job_id: str, sequence: int, offset: int, size: int | None = None
) -> Response:
    # The body is read and decoded before the transaction (no write lock waits on a slow
    # client), but nothing about it is answered before the token is checked: a caller
    # without a valid token gets 401 whatever it sent.
    problem: BadRequest | None = None
    try:
        data = logs.decode_chunk(await request.body(), request.headers.get("content-encoding"))
    except BadRequest as error:
        data, problem = b"", error
    if problem is None and size is not None and size != len(data):
        problem = BadRequest(f"Chunk size mismatch: size={size} but the body has {len(data)} bytes")
    async with request_transaction(request) as session:
        job = await auth.job_ref(session, request, job_id)
        if problem is not None:
            raise problem
        if job.state not in ON_AGENT:
            # As Buildkite: the log closed with the job (finished, lost, canceled, expired).
            # The agent drops the chunk and counts it in `chunks_failed_count`.
            raise BadRequest(f"Job can't have chunks: its state is {job.state}")
        await logs.append_chunk(session, job_id=job.id, sequence=sequence, offset=offset, data=data)
    _instruments(request).log_bytes.inc(len(data))
    return Response(status_code=201)


@router.post("/jobs/{job_id}/header_times")
async def header_times(request: Request, job_id: str) -> dict[str, Any]:
    async with request_transaction(request) as session:
        await auth.job_ref(session, request, job_id)
    return {}


@router.put("/jobs/{job_id}/finish", response_model=dict[str, Any])
async def finish(request: Request, job_id: str, body: FinishRequest) -> Response:
    try:
        exit_status = int(str(body.exit_status).strip())
    except ValueError as error:
        raise BadRequest(
            f"exit_status must be a decimal integer, got {body.exit_status!r}"
        ) from error
    async with request_transaction(request) as session:
        ref = await auth.job_ref(session, request, job_id, mark_seen=False)
        job = await build_transitions.finish_job(
            session,
            job=ref,
            exit_status=exit_status,
            signal=body.signal or None,
            signal_reason=body.signal_reason or None,
            finished_at=parse_agent_time(body.finished_at),
            chunks_failed_count=body.chunks_failed_count,
        )
        await agents.record_job_finished(session, job.agent_id)
    return _json({"id": str(job.id), "state": job.state})


def _json(body: dict[str, Any]) -> Response:
    """The agent's hot calls answer with orjson's bytes: FastAPI would validate the dict
    against the route's `response_model` and walk it with `jsonable_encoder` first."""
    return Response(orjson.dumps(body), media_type="application/json")


def _instruments(request: Request) -> Instruments:
    instruments: Instruments = request.app.state.instruments
    return instruments


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as error:
        raise NotFound.of("job") from error


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise BadRequest(f"Problems parsing JSON: {error}") from error
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object")
    return value
