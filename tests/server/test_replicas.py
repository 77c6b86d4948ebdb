"""Two server replicas on one PostgreSQL database: a ping long-polling on one replica is woken
by a build created on the other (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from kiteline.server.kit.notify import CHANNEL, Notifier, PostgresRelay
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer


def test_a_build_on_one_replica_wakes_a_ping_on_another(
    make_server: Callable[..., LiveServer], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    # A long ping wait: without the cross-replica wake-up this test would sit it out.
    first = make_server(agent_ping_max_wait=600)
    second = make_server(agent_ping_max_wait=600)
    identity = first.identity("acme")
    client = first.client(identity.api_token)
    client.post(
        "/v2/organizations/acme/pipelines",
        json={"name": "P", "configuration": "steps:\n  - command: echo hi\n"},
    )
    agent = ScriptedAgent.register(second.url, identity.agent_token)
    results: list[dict[str, Any]] = []
    waiting = threading.Barrier(2)

    def poll() -> None:
        waiting.wait()
        results.append(agent.ping(wait=600))

    thread = threading.Thread(target=poll)
    thread.start()
    waiting.wait()
    created = client.post(
        "/v2/organizations/acme/pipelines/p/builds", json={"commit": "HEAD", "branch": "main"}
    )
    thread.join(timeout=120)
    assert not thread.is_alive(), "the ping on the other replica was not woken"
    assert results[0]["job"]["id"] == created.json()["jobs"][0]["id"]


def test_a_burst_of_wake_ups_reaches_the_other_replicas_without_errors(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def burst() -> int:
        import asyncpg

        received: list[object] = []
        other = await asyncpg.connect(dsn)
        await other.add_listener(CHANNEL, lambda *args: received.append(args))
        relay = PostgresRelay(dsn)
        await relay.start()
        try:
            # One asyncpg connection runs one statement at a time: fifty at once must queue.
            await asyncio.gather(*(relay._send() for _ in range(50)))
            await other.execute("SELECT 1")  # notifications arrive between statements
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.05)
        finally:
            await relay.stop()
            await other.close()
        return len(received)

    with caplog.at_level(logging.WARNING, logger="kiteline.notify"):
        delivered = asyncio.run(burst())
    assert caplog.records == []
    assert 1 <= delivered <= 50


def test_the_relay_reconnects_after_its_connection_is_terminated(database_url: str) -> None:
    """PostgreSQL restarted or the backend killed: the relay listens again, makes up for the
    wake-ups it may have missed (its own waiters and every other replica's look again), and
    carries the next NOTIFY as before."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the relay carries PostgreSQL NOTIFYs")
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    notifier = Notifier("kiteline_test_relay")

    async def scenario() -> tuple[bool, int, int, bool]:
        import asyncpg

        received: list[object] = []
        other = await asyncpg.connect(dsn)
        await other.add_listener(notifier.channel, lambda *args: received.append(args))
        relay = PostgresRelay(dsn, notifiers=(notifier,))
        await relay.start()
        try:
            ticket = notifier.ticket()
            pid = relay._connection.get_server_pid()
            await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            # The catch-up after the reconnect wakes the local waiter...
            caught_up = await notifier.wait(ticket, 60)
            # ...and tells the other replicas to look again.
            for _ in range(600):
                await other.execute("SELECT 1")  # notifications arrive between statements
                if received:
                    break
                await asyncio.sleep(0.05)
            told_others = len(received)
            # A NOTIFY from another replica reaches this one's waiters again.
            ticket = notifier.ticket()
            await other.execute(f"NOTIFY {notifier.channel}")
            woken_again = await notifier.wait(ticket, 60)
            return caught_up, told_others, relay.reconnects, woken_again
        finally:
            await relay.stop()
            await other.close()

    caught_up, told_others, reconnects, woken_again = asyncio.run(scenario())
    assert (caught_up, reconnects, woken_again) == (True, 1, True)
    assert told_others >= 1
