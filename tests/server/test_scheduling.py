"""Scheduling through the real server and its background sweeps: lost agents, expiry,
timeouts, concurrency groups and priority."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from kiteline.server.jobs.models import Job
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

ROOT = "/v2/organizations/acme/pipelines"
#: The smallest lost-agent threshold the settings allow with one-second heartbeats.
QUICKLY_LOST = {
    "agent_lost_after_seconds": 2.0,
    "agent_heartbeat_interval": 1,
    "worker_interval_seconds": 0.1,
}


def _pipeline(server: LiveServer, configuration: str) -> tuple[httpx.Client, str]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    assert client.post(ROOT, json={"name": "P", "configuration": configuration}).status_code == 201
    return client, identity.agent_token


def _build(client: httpx.Client) -> dict[str, Any]:
    return client.get(f"{ROOT}/p/builds/1", params={"include_retried_jobs": "true"}).json()


def _eventually(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_a_lost_agents_job_finishes_with_minus_one_and_is_retried(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(**QUICKLY_LOST)
    client, agent_token = _pipeline(
        server,
        "steps:\n  - command: sleep 100\n    retry:\n      automatic:\n        - exit_status: -1\n"
        "          limit: 1\n",
    )
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    doomed = ScriptedAgent.register(server.url, agent_token, name="doomed")
    doomed.take_job()  # and then it goes silent: no heartbeat, no ping
    lost = _eventually(
        lambda: (
            (a := client.get(f"/v2/organizations/acme/agents/{doomed.id}").json())[
                "connection_state"
            ]
            == "lost"
            and a
        )
    )
    assert lost["lost_at"] is not None
    build = _eventually(lambda: (b := _build(client)) and len(b["jobs"]) == 2 and b)
    first, retry = build["jobs"]
    assert (first["state"], first["exit_status"], first["signal_reason"]) == (
        "failed",
        -1,
        "agent_lost",
    )
    assert (retry["state"], retry["retry_type"]) == ("scheduled", "automatic")
    rescuer = ScriptedAgent.register(server.url, agent_token, name="rescuer")
    rescuer.finish(rescuer.take_job(), "0")
    assert _build(client)["state"] == "passed"


def test_an_agent_whose_job_keeps_calling_is_alive_without_heartbeats(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(**QUICKLY_LOST)
    client, agent_token = _pipeline(server, "steps:\n  - command: sleep 100\n")
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    busy = ScriptedAgent.register(server.url, agent_token, name="busy")
    job = busy.take_job()
    agent_url = f"/v2/organizations/acme/agents/{busy.id}"
    # Only the job's token is heard from, for several times the lost-agent threshold: log
    # chunks and state polls, no ping, no heartbeat.
    offset = 0
    for sequence in range(1, 41):
        line = f"line {sequence}\n".encode()
        assert busy.log(job, sequence, offset, line).status_code == 201
        offset += len(line)
        assert busy.call("GET", f"/jobs/{job['id']}", token=job["token"]).json() == {
            "id": job["id"],
            "state": "running",
        }
        time.sleep(0.2)
    assert client.get(agent_url).json()["connection_state"] == "connected"
    # Silent at last: now it is lost.
    _eventually(lambda: client.get(agent_url).json()["connection_state"] == "lost")
    assert _build(client)["jobs"][0]["signal_reason"] == "agent_lost"


def test_jobs_nobody_takes_expire(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(job_expiry_seconds=0.5, worker_interval_seconds=0.1)
    client, _ = _pipeline(server, "steps:\n  - command: echo x\n    agents:\n      queue: none\n")
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    build = _eventually(lambda: (b := _build(client))["state"] == "failed" and b)
    assert build["jobs"][0]["state"] == "expired"


def test_a_job_past_its_timeout_times_out(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(worker_interval_seconds=0.1)
    client, agent_token = _pipeline(
        server, "steps:\n  - command: sleep 1000\n    timeout_in_minutes: 1\n"
    )
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    agent = ScriptedAgent.register(server.url, agent_token)
    # Started now by the agent's clock: not yet past its timeout until it is moved back.
    job = agent.take_job(started_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    assert agent.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"] == "running"

    async def started_two_minutes_ago(session: Any) -> None:
        await session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job["id"]))
            .values(started_at=datetime.now(UTC) - timedelta(minutes=2))
        )

    server.admin(started_two_minutes_ago)
    _eventually(
        lambda: (
            agent.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"]
            == "timing_out"
        )
    )
    agent.finish(job, "143", signal="SIGTERM", signal_reason="cancel")
    build = _build(client)
    assert build["jobs"][0]["state"] == "timed_out"
    assert build["state"] == "failed"


def test_a_concurrency_group_of_one_never_runs_two_jobs(server: LiveServer) -> None:
    client, agent_token = _pipeline(
        server,
        "steps:\n  - command: deploy\n    concurrency: 1\n    concurrency_group: deploy\n",
    )
    for _ in range(2):
        client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    first = ScriptedAgent.register(server.url, agent_token)
    second = ScriptedAgent.register(server.url, agent_token)
    running = first.take_job()
    assert second.ping() == {"action": "idle"}
    first.finish(running, "0")
    assert "job" in second.ping()


def test_higher_priority_jobs_are_dispatched_first(server: LiveServer) -> None:
    client, agent_token = _pipeline(
        server,
        "steps:\n  - command: low\n  - command: high\n    priority: 5\n",
    )
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    agent = ScriptedAgent.register(server.url, agent_token)
    assert agent.take_job()["env"]["BUILDKITE_COMMAND"] == "high"
