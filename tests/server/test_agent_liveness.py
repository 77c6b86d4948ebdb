"""The lost-agent sweep counts an agent's silence only while the agent API is served: not
while no process serves it, and not before a full `lost_after` has passed since the latest
(re)start of a serving process, wherever the sweep runs (here: as `kiteline worker` runs it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import availability
from kiteline.server.agents.models import Agent, ServingProcess
from kiteline.server.kit.db import create_engine, create_sessionmaker
from kiteline.server.workers import sweeps
from kiteline.settings import Settings
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

#: Long enough that no test run comes near it: what is asserted is where silence is counted
#: from, never how fast anything happens.
LOST_AFTER = 600.0
#: Servers whose own sweeps never run: the test sweeps, as a `kiteline worker` would.
NO_SWEEPS: dict[str, Any] = {"run_workers": False, "agent_lost_after_seconds": LOST_AFTER}


def _worker_sweep(settings: Settings) -> int:
    """One round of the lost-agent sweep in a process of its own, as `kiteline worker` does."""

    async def sweep() -> int:
        engine = create_engine(settings.resolved_database_url)
        try:
            return await sweeps.lose_silent_agents(create_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(sweep())


def _silent_for_an_hour(server: LiveServer, agent: ScriptedAgent) -> None:
    async def move(session: AsyncSession) -> None:
        await session.execute(
            update(Agent)
            .where(Agent.id == uuid.UUID(agent.id))
            .values(last_seen_at=datetime.now(UTC) - timedelta(hours=1))
        )

    server.admin(move)


def _serving_for_an_hour(server: LiveServer) -> None:
    """As if every process serving now had started an hour ago."""

    async def move(session: AsyncSession) -> None:
        await session.execute(
            update(ServingProcess).values(serving_since=datetime.now(UTC) - timedelta(hours=1))
        )

    server.admin(move)


def _state(server: LiveServer, agent: ScriptedAgent) -> str:
    async def read(session: AsyncSession) -> str:
        state: str = await session.scalar(
            select(Agent.connection_state).where(Agent.id == uuid.UUID(agent.id))
        )
        return state

    result: str = server.admin(read)
    return result


def test_no_agent_is_lost_while_no_process_serves_the_agent_api(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(**NO_SWEEPS)
    agent = ScriptedAgent.register(server.url, server.identity("acme").agent_token)
    server.stop()  # the only serving process is gone: the agent cannot be heard
    _silent_for_an_hour(server, agent)
    assert _worker_sweep(server.settings) == 0
    assert _state(server, agent) == "connected"


def test_a_restart_gives_every_agent_a_full_lost_after(
    make_server: Callable[..., LiveServer],
) -> None:
    first = make_server(**NO_SWEEPS)
    agent = ScriptedAgent.register(first.url, first.identity("acme").agent_token)
    first.stop()
    restarted = make_server(**NO_SWEEPS)
    _silent_for_an_hour(restarted, agent)  # silent since long before the restart
    assert _worker_sweep(restarted.settings) == 0
    assert _state(restarted, agent) == "connected"
    _serving_for_an_hour(restarted)  # `lost_after` has now passed since the restart
    assert _worker_sweep(restarted.settings) == 1
    assert _state(restarted, agent) == "lost"


def test_a_replica_restarting_gives_the_grace_to_the_sweeps_of_the_others(
    make_server: Callable[..., LiveServer],
) -> None:
    serving = make_server(**NO_SWEEPS)
    agent = ScriptedAgent.register(serving.url, serving.identity("acme").agent_token)
    _serving_for_an_hour(serving)
    _silent_for_an_hour(serving, agent)
    make_server(**NO_SWEEPS)  # another replica (re)starts: agents behind it were cut off
    assert _worker_sweep(serving.settings) == 0
    assert _state(serving, agent) == "connected"


def test_a_process_silent_past_the_presence_timeout_serves_anew_when_it_returns(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(**NO_SWEEPS)
    server.stop()
    process_id = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(hours=1)
    step = availability.PRESENCE_INTERVAL
    stall = availability.PRESENCE_TIMEOUT + step

    async def serve(session: AsyncSession) -> list[datetime | None]:
        await availability.announce(session, process_id, start)
        await availability.keep_alive(session, process_id, start + step)
        seen = [await availability.serving_since(session, start + 2 * step)]
        # Nothing heard for longer than the timeout (a stalled loop): not serving meanwhile...
        seen.append(await availability.serving_since(session, start + step + stall))
        # ...and serving anew, from its return, once it is heard from again.
        await availability.keep_alive(session, process_id, start + step + stall)
        seen.append(await availability.serving_since(session, start + step + stall))
        return seen

    assert server.admin(serve) == [start, None, start + step + stall]
