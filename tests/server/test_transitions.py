"""The build state machine, table by table: the state a build's jobs make it (a pure function),
and, on a real database, the events each transition writes and whether it wakes long-polling
agents (only when something became runnable)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.builds import locks, transitions
from kiteline.server.builds import service as builds
from kiteline.server.builds.models import Build
from kiteline.server.builds.states import BuildState
from kiteline.server.events.models import Event
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs import transitions as job_transitions
from kiteline.server.jobs.definition import StepDefinition
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction, utcnow
from kiteline.server.kit.notify import dispatch
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer
from tests.support.run_async import run_async

ROOT = "/v2/organizations/acme/pipelines"
START = datetime(2026, 1, 1, tzinfo=UTC)

# -- The state a build's jobs make it --------------------------------------------------------


def _job(
    state: JobState,
    *,
    type: JobType = JobType.SCRIPT,
    passed: bool | None = None,
    soft_failed: bool = False,
    started: bool = False,
    blocked_state: str | None = None,
) -> Job:
    return Job(
        type=type,
        state=state,
        passed=passed,
        soft_failed=soft_failed,
        started_at=START if started else None,
        definition=StepDefinition(blocked_state=blocked_state),
    )


def _build(state: BuildState = BuildState.SCHEDULED, *, started: bool = False) -> Build:
    return Build(state=state, started_at=START if started else None, blocked=False)


S = JobState
RUNNING = _job(S.RUNNING, started=True)
PASSED = _job(S.FINISHED, passed=True, started=True)
FAILED = _job(S.FINISHED, passed=False, started=True)

DERIVATION = [
    ("nothing started yet", _build(), [_job(S.SCHEDULED)], (BuildState.SCHEDULED, None)),
    ("a job started", _build(), [RUNNING, _job(S.SCHEDULED)], (BuildState.RUNNING, None)),
    ("a job failed, another runs", _build(), [FAILED, RUNNING], (BuildState.FAILING, None)),
    ("every job passed", _build(started=True), [PASSED, PASSED], (BuildState.PASSED, None)),
    ("a job failed, all done", _build(started=True), [PASSED, FAILED], (BuildState.FAILED, None)),
    (
        "a soft failure passes",
        _build(started=True),
        [_job(S.FINISHED, passed=False, soft_failed=True, started=True)],
        (BuildState.PASSED, None),
    ),
    (
        "a job timed out",
        _build(started=True),
        [_job(S.TIMED_OUT, passed=False, started=True)],
        (BuildState.FAILED, None),
    ),
    ("a job expired", _build(), [_job(S.EXPIRED, passed=False)], (BuildState.FAILED, None)),
    (
        "a job canceled on its own",
        _build(started=True),
        [PASSED, _job(S.CANCELED, passed=False, started=True)],
        (BuildState.CANCELED, None),
    ),
    (
        "only skipped jobs",
        _build(),
        [_job(S.SKIPPED), _job(S.FINISHED, type=JobType.WAITER, passed=True)],
        (BuildState.NOT_RUN, None),
    ),
    (
        "waiting behind a block step",
        _build(started=True),
        [PASSED, _job(S.BLOCKED, type=JobType.MANUAL), _job(S.WAITING)],
        (BuildState.PASSED, "passed"),
    ),
    (
        "a block step that fails the build while it waits",
        _build(started=True),
        [PASSED, _job(S.BLOCKED, type=JobType.MANUAL, blocked_state="failed")],
        (BuildState.FAILED, "failed"),
    ),
    (
        "blocked after a failure",
        _build(started=True),
        [FAILED, _job(S.BLOCKED, type=JobType.MANUAL, blocked_state="running")],
        (BuildState.FAILED, "running"),
    ),
    (
        "canceling while an agent stops a job",
        _build(BuildState.CANCELING, started=True),
        [_job(S.CANCELING, started=True)],
        (BuildState.CANCELING, None),
    ),
    (
        "canceling, every job stopped",
        _build(BuildState.CANCELING, started=True),
        [_job(S.CANCELED, passed=False, started=True)],
        (BuildState.CANCELED, None),
    ),
]


@pytest.mark.parametrize(
    ("build", "jobs", "expected"),
    [pytest.param(build, jobs, expected, id=name) for name, build, jobs, expected in DERIVATION],
)
def test_the_build_state_follows_from_its_jobs(
    build: Build, jobs: list[Job], expected: tuple[BuildState, str | None]
) -> None:
    assert transitions.derived_state(build, jobs) == expected


# -- Each transition's events and wake-up ----------------------------------------------------


@dataclass
class Context:
    """One row's build, its pipeline and the agent that takes its jobs."""

    pipeline_slug: str
    agent_id: uuid.UUID
    build_id: uuid.UUID | None = None
    seen: dict[str, Any] = field(default_factory=dict)

    async def create(self, session: AsyncSession) -> None:
        organization = await organizations.get_by_slug(session, "acme")
        pipeline = await pipelines.get(
            session, organization_id=organization.id, slug=self.pipeline_slug
        )
        build = await builds.create(
            session,
            organization=organization,
            pipeline=pipeline,
            creator_id=None,
            new=builds.NewBuild(commit="HEAD", branch="main"),
        )
        self.build_id = build.id

    async def job(self, session: AsyncSession, label: str) -> Job:
        found = await session.scalar(
            select(Job).where(Job.build_id == self.build_id, Job.label == label, ~Job.retried)
        )
        assert found is not None, label
        return found

    async def build(self, session: AsyncSession) -> Build:
        found = await session.get(Build, self.build_id)
        assert found is not None
        return found


Action = Callable[[AsyncSession, Context], Awaitable[Any]]


def create() -> Action:
    return lambda session, ctx: ctx.create(session)


def assign(label: str) -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        job = await ctx.job(session, label)
        assert await job_transitions.assign(
            session, job_id=job.id, agent_id=ctx.agent_id, now=utcnow()
        )

    return act


def accept(label: str) -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        job = await ctx.job(session, label)
        await job_transitions.accept(session, job_id=job.id, agent_id=ctx.agent_id)

    return act


def start(label: str, *, by_ref: bool = False) -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        job = await ctx.job(session, label)
        which = await jobs.ref(session, job.id) if by_ref else job
        await transitions.start_job(session, job=which, started_at=None)

    return act


def on_agent(label: str) -> list[Action]:
    return [assign(label), accept(label), start(label)]


def finish(label: str, exit_status: int) -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        job = await ctx.job(session, label)
        await transitions.finish_job(session, job=job, exit_status=exit_status)

    return act


def on_job(label: str, transition: Callable[..., Awaitable[Any]], **arguments: Any) -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        await transition(session, job=await ctx.job(session, label), **arguments)

    return act


def release() -> Action:
    return lambda session, ctx: jobs.release_assigned(session, ctx.agent_id)


def lose_agent() -> Action:
    return lambda session, ctx: transitions.lose_jobs_of(session, agent_id=ctx.agent_id)


def cancel_build() -> Action:
    async def act(session: AsyncSession, ctx: Context) -> None:
        await transitions.cancel(session, build=await ctx.build(session))

    return act


ONE = "steps:\n  - label: a\n    command: 'true'\n"
TWO = ONE + "  - label: b\n    command: 'true'\n"
AFTER_WAIT = ONE + "  - wait\n  - label: b\n    command: 'true'\n"
RETRIED = ONE + "    retry:\n      automatic:\n        - exit_status: 3\n"
BLOCKED = "steps:\n  - block: Go\n    key: go\n  - label: b\n    command: 'true'\n"
TRIGGER = "steps:\n  - trigger: child\n    label: t\n    async: true\n"
# Jobs at positions 0 to SMALL_BUILD: a start or finish re-reads its job alone, not the list.
LARGER = ONE + "".join(f"  - label: c{n}\n    command: 'true'\n" for n in range(locks.SMALL_BUILD))

SCHEDULED, STARTED, FINISHED, ACTIVATED = (
    "job.scheduled",
    "job.started",
    "job.finished",
    "job.activated",
)
B_SCHEDULED, B_RUNNING, B_FAILING, B_FINISHED = (
    "build.scheduled",
    "build.running",
    "build.failing",
    "build.finished",
)


@dataclass(frozen=True)
class Row:
    name: str
    configuration: str
    before: list[Action]
    action: Action
    events: list[str]
    wakes: bool


TABLE = [
    Row("a build is scheduled", ONE, [], create(), [B_SCHEDULED, SCHEDULED], True),
    Row("a build stops at a block step", BLOCKED, [], create(), [B_SCHEDULED, B_FINISHED], False),
    Row(
        "a trigger step makes its build",
        TRIGGER,
        [],
        create(),
        [B_SCHEDULED, STARTED, B_SCHEDULED, SCHEDULED, FINISHED, B_FINISHED],
        True,
    ),
    Row("an agent is assigned a job", ONE, [create()], assign("a"), [], False),
    Row("its agent accepts it", ONE, [create(), assign("a")], accept("a"), [], False),
    Row(
        "the build's first job starts",
        ONE,
        [create(), assign("a"), accept("a")],
        start("a"),
        [STARTED, B_RUNNING],
        False,
    ),
    Row(
        "another job starts (one statement)",
        TWO,
        [create(), *on_agent("a"), assign("b"), accept("b")],
        start("b", by_ref=True),
        [STARTED],
        False,
    ),
    Row(
        "the last job passes",
        ONE,
        [create(), *on_agent("a")],
        finish("a", 0),
        [FINISHED, B_FINISHED],
        False,
    ),
    Row(
        "a job passes and the next step becomes runnable",
        AFTER_WAIT,
        [create(), *on_agent("a")],
        finish("a", 0),
        [FINISHED, SCHEDULED],
        True,
    ),
    Row(
        "a job fails while another runs",
        TWO,
        [create(), *on_agent("a"), *on_agent("b")],
        finish("a", 1),
        [FINISHED, B_FAILING],
        False,
    ),
    Row(
        "a failure its retry rule matches",
        RETRIED,
        [create(), *on_agent("a")],
        finish("a", 3),
        [FINISHED, SCHEDULED],
        True,
    ),
    Row(
        "a failed job retried by hand",
        ONE,
        [create(), *on_agent("a"), finish("a", 1)],
        on_job("a", transitions.retry_job),
        [SCHEDULED],
        True,
    ),
    Row(
        "a stopping agent hands back its assigned job",
        ONE,
        [create(), assign("a")],
        release(),
        [],
        True,
    ),
    Row(
        "a lost agent's assigned job goes back to the queue",
        ONE,
        [create(), assign("a")],
        lose_agent(),
        [],
        True,
    ),
    Row(
        "a lost agent's running job finishes",
        ONE,
        [create(), *on_agent("a")],
        lose_agent(),
        [FINISHED, B_FINISHED],
        False,
    ),
    Row(
        "a job runs out of time",
        ONE,
        [create(), *on_agent("a")],
        on_job("a", transitions.time_out_job),
        [],
        False,
    ),
    Row(
        "a job nobody took expires",
        ONE,
        [create()],
        on_job("a", transitions.expire_job),
        [FINISHED, B_FINISHED],
        False,
    ),
    Row(
        "a running job is canceled",
        ONE,
        [create(), *on_agent("a")],
        on_job("a", transitions.cancel_job),
        [],
        False,
    ),
    Row(
        "a scheduled build is canceled",
        ONE,
        [create()],
        cancel_build(),
        [FINISHED, B_FINISHED],
        True,
    ),
    Row(
        "a block step is unblocked",
        BLOCKED,
        [create()],
        on_job("Go", transitions.unblock_job, fields={}, unblocked_by_id=None),
        [ACTIVATED, SCHEDULED],
        True,
    ),
    Row(
        "the first job of a build of more than SMALL_BUILD jobs starts",
        LARGER,
        [create(), assign("a"), accept("a")],
        start("a", by_ref=True),
        [STARTED, B_RUNNING],
        False,
    ),
    Row(
        "a job of a build of more than SMALL_BUILD jobs passes while others are still to run",
        LARGER,
        [create(), *on_agent("a")],
        finish("a", 0),
        [FINISHED],
        False,
    ),
    Row(
        "a job of a build of more than SMALL_BUILD jobs fails while others are still to run",
        LARGER,
        [create(), *on_agent("a")],
        finish("a", 1),
        [FINISHED, B_FAILING],
        False,
    ),
]


async def _effects(
    sessions: async_sessionmaker[AsyncSession], ctx: Context, action: Action
) -> tuple[list[str], bool]:
    """The events `action`'s transaction wrote, and whether its commit woke held pings."""
    async with transaction(sessions, read_only=True) as session:
        last = await session.scalar(select(func.max(Event.id))) or 0
    ticket = dispatch.ticket()
    async with transaction(sessions) as session:
        await action(session, ctx)
    async with transaction(sessions, read_only=True) as session:
        names = await session.scalars(select(Event.name).where(Event.id > last).order_by(Event.id))
        return list(names), ticket.event.is_set()


def test_each_transition_writes_its_events_and_wakes_agents_only_when_work_became_runnable(
    server: LiveServer,
) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    configurations = {"child": ONE}
    for index, row in enumerate(TABLE):
        configurations[f"p{index}"] = row.configuration
    for slug, configuration in configurations.items():
        created = client.post(ROOT, json={"name": slug, "configuration": configuration})
        assert created.status_code == 201, created.text
    agent = ScriptedAgent.register(server.url, identity.agent_token)

    async def run() -> list[tuple[str, list[str], bool]]:
        engine = create_engine(server.settings.resolved_database_url)
        sessions = create_sessionmaker(engine)
        seen = []
        try:
            for index, row in enumerate(TABLE):
                ctx = Context(f"p{index}", uuid.UUID(agent.id))
                for step in row.before:
                    await _effects(sessions, ctx, step)
                events, woke = await _effects(sessions, ctx, row.action)
                seen.append((row.name, events, woke))
                # The agent holds no job into the next row.
                async with transaction(sessions) as session:
                    for held in await jobs.held_by(session, ctx.agent_id):
                        job_transitions.settle(held, JobState.CANCELED, utcnow(), passed=False)
        finally:
            await engine.dispose()
        return seen

    assert run_async(run) == [(row.name, row.events, row.wakes) for row in TABLE]


# -- A job handed back is taken by an idle agent at once ---------------------------------------

#: Long, so that a ping answered with a job before it ran out can only have been woken.
LONG_POLL = 30.0


def _idle_agent(server: LiveServer, agent_token: str) -> ScriptedAgent:
    """An agent registered but not yet connected: its first ping connects it, in the same
    transaction that looks for a job, so once it shows as connected that look has been made
    and the ping is waiting."""
    http = httpx.Client(base_url=f"{server.url}/v3", timeout=LONG_POLL * 2)
    registered = http.post(
        "/register",
        json={"name": "idle", "hostname": "test-host", "meta_data": []},
        headers={"Authorization": f"Token {agent_token}"},
    )
    registered.raise_for_status()
    data = registered.json()
    return ScriptedAgent(http, data["access_token"], data["id"], data["name"])


def _hand_back_while_another_waits(
    server: LiveServer, hand_back: Callable[[httpx.Client, ScriptedAgent], None]
) -> None:
    """Agent A is assigned the build's job; agent B long-polls for work; A hands the job back
    (`hand_back`); B's one ping is answered with that job."""
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    assert client.post(ROOT, json={"name": "P", "configuration": ONE}).status_code == 201
    assert client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"}).is_success
    holder = ScriptedAgent.register(server.url, identity.agent_token, name="holder")
    job = holder.ping()["job"]
    idle = _idle_agent(server, identity.agent_token)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(idle.ping, LONG_POLL)
        agent_url = f"/v2/organizations/acme/agents/{idle.id}"
        deadline = time.monotonic() + LONG_POLL
        while client.get(agent_url).json()["connection_state"] == "never_connected":
            assert time.monotonic() < deadline and not answer.done(), answer
            time.sleep(0.02)
        assert not answer.done()  # it found nothing (A holds the job) and waits
        hand_back(client, holder)
        # Answered with the job: woken by the hand-back, since unwoken it would have been
        # answered without one when its 30 seconds ran out.
        assert answer.result() == {"action": "idle", "job": {"id": job["id"], "state": "assigned"}}


def test_a_stopping_agents_assigned_job_is_taken_by_an_idle_long_polling_agent(
    make_server: Callable[..., LiveServer],
) -> None:
    def stop(client: httpx.Client, holder: ScriptedAgent) -> None:
        stopped = client.put(
            f"/v2/organizations/acme/agents/{holder.id}/stop", json={"force": False}
        )
        assert stopped.status_code == 204
        assert holder.ping()["action"] == "disconnect"

    _hand_back_while_another_waits(make_server(agent_ping_max_wait=LONG_POLL), stop)


def test_a_lost_agents_assigned_job_is_taken_by_an_idle_long_polling_agent(
    make_server: Callable[..., LiveServer],
) -> None:
    def go_silent(client: httpx.Client, holder: ScriptedAgent) -> None:
        """The holder pings no more; the workers' sweep finds it lost and hands back its job."""

    server = make_server(
        agent_ping_max_wait=LONG_POLL,
        agent_lost_after_seconds=2.0,
        agent_heartbeat_interval=1,
        worker_interval_seconds=0.1,
    )
    _hand_back_while_another_waits(server, go_silent)
