"""Two server replicas on one PostgreSQL database: a ping long-polling on one replica is woken
by a build created on the other (LISTEN/NOTIFY)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

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
