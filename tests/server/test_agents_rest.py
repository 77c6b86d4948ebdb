"""Agents over REST: list with filters, get, and stop (graceful or forced) reaching the agent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tests.support.agent_protocol import ScriptedAgent, running_job
from tests.support.live_server import LiveServer, pipeline_with_a_build

AGENTS = "/v2/organizations/acme/agents"


def _held_ping(agent: ScriptedAgent) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """`agent`'s ping that may be held ten minutes, in a thread: the thread and the list its
    answer goes to. Returns as the thread is about to send it."""
    answers: list[dict[str, Any]] = []
    waiting = threading.Barrier(2)

    def poll() -> None:
        waiting.wait()
        answers.append(agent.ping(wait=600))

    thread = threading.Thread(target=poll)
    thread.start()
    waiting.wait()
    return thread, answers


def test_list_shows_connected_agents_with_filters(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    for name, version in (("prod-1", "3.1"), ("prod-2", "3.2"), ("dev-1", "3.1")):
        ScriptedAgent.register(server.url, identity.agent_token, name=name, version=version)
    names = [a["name"] for a in client.get(AGENTS + "/").json()]
    assert names == ["dev-1", "prod-1", "prod-2"]
    assert [a["name"] for a in client.get(AGENTS, params={"name": "prod-*"}).json()] == [
        "prod-1",
        "prod-2",
    ]
    assert [a["name"] for a in client.get(AGENTS, params={"version": "3.1"}).json()] == [
        "dev-1",
        "prod-1",
    ]
    agent = client.get(AGENTS, params={"name": "dev-1"}).json()[0]
    assert agent["connection_state"] == "connected"
    assert agent["meta_data"] == ["queue=default"]
    assert agent["queue"] == "default"
    assert agent["hostname"] == "test-host"
    assert client.get(f"{AGENTS}/{agent['id']}").json()["name"] == "dev-1"
    assert client.get(f"{AGENTS}/nope").json() == {"message": "No agent found"}


def test_graceful_stop_lets_the_job_finish_then_disconnects(server: LiveServer) -> None:
    client, agent, job = running_job(server, "steps:\n  - command: echo hi\n")
    current = client.get(f"{AGENTS}/{agent.id}").json()
    assert current["job"]["id"] == job["id"]
    stop = client.put(f"{AGENTS}/{agent.id}/stop", json={"force": False})
    assert stop.status_code == 204
    assert client.get(f"{AGENTS}/{agent.id}").json()["connection_state"] == "stopping"
    assert agent.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"] == "running"
    agent.finish(job, "0")
    assert agent.ping() == {"action": "disconnect", "message": "The agent was asked to stop"}
    agent.call("POST", "/disconnect").raise_for_status()
    stopped = client.get(f"{AGENTS}/{agent.id}").json()
    assert stopped["connection_state"] == "stopped"
    assert stopped["stopped_at"] is not None
    assert client.get(AGENTS).json() == []
    again = client.put(f"{AGENTS}/{agent.id}/stop", json={"force": False})
    assert again.status_code == 400
    assert again.json() == {"message": "Can only stop connected agents"}


def test_forced_stop_cancels_the_running_job(server: LiveServer) -> None:
    client, agent, job = running_job(server, "steps:\n  - command: sleep 100\n")
    assert client.put(f"{AGENTS}/{agent.id}/stop", json={"force": True}).status_code == 204
    assert (
        agent.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"] == "canceling"
    )
    agent.finish(job, "-1", signal="SIGTERM", signal_reason="agent_stop")
    build = client.get("/v2/organizations/acme/pipelines/p/builds/1").json()
    assert build["state"] == "canceled"
    assert build["jobs"][0]["state"] == "canceled"


def test_stop_wakes_an_idle_agents_held_ping(make_server: Callable[..., LiveServer]) -> None:
    # Pings may be held for ten minutes: only a wake-up can end this one within the join below.
    server = make_server(agent_ping_max_wait=600)
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    assert agent.ping() == {"action": "idle"}
    thread, answers = _held_ping(agent)
    assert client.put(f"{AGENTS}/{agent.id}/stop", json={"force": False}).status_code == 204
    thread.join(timeout=60)
    assert answers == [{"action": "disconnect", "message": "The agent was asked to stop"}]


def test_a_job_released_by_a_stopping_agent_wakes_an_idle_agents_held_ping(
    make_server: Callable[..., LiveServer],
) -> None:
    # Pings may be held for ten minutes: only a wake-up can hand the job over within the join.
    server = make_server(agent_ping_max_wait=600)
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    pipeline_with_a_build(client, "steps:\n  - command: echo hi\n")
    stopping = ScriptedAgent.register(server.url, identity.agent_token, name="stopping")
    assigned = stopping.ping()["job"]  # assigned to it, never accepted
    idle = ScriptedAgent.register(server.url, identity.agent_token, name="idle")
    assert idle.ping() == {"action": "idle"}
    thread, answers = _held_ping(idle)
    assert client.put(f"{AGENTS}/{stopping.id}/stop", json={"force": False}).status_code == 204
    # Its next ping tells it to go and hands the job back to the queue.
    assert stopping.ping()["action"] == "disconnect"
    thread.join(timeout=60)
    assert answers == [{"action": "idle", "job": {"id": assigned["id"], "state": "assigned"}}]
