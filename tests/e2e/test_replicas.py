"""Two `kiteline server` replicas as real processes on one PostgreSQL database and one Redis:
agents connected to different replicas, builds created through both, every job finishes;
then `kill -9` of one replica while jobs run, and its agent carries on through the other
(behind a failover proxy, as behind any load balancer): no build, job or log line is lost."""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import free_port
from tests.support.processes import kill, kiteline_env, running, server_on, wait_until
from tests.support.stack import ORG, Stack, stack
from tests.support.tcp_proxy import failover_proxy

REDIS_URL = os.environ.get("KITELINE_TEST_REDIS_URL")
LINES = 6


def _pipeline(release: Path) -> str:
    """Two steps that log two lines, hold until `release` exists (so that four agents hold
    four jobs while a replica is killed), then log the rest, a line each half second."""
    after = "; ".join(f'echo "line {i}"; sleep 0.5' for i in range(3, LINES + 1))
    hold = f"while [ ! -f {release} ]; do sleep 0.1; done"

    def command(exit_status: int) -> str:
        return f'echo "line 1"; echo "line 2"; {hold}; {after}; echo done; exit {exit_status}'

    return (
        "steps:\n"
        f"  - key: passes\n    command: '{command(0)}'\n"
        f"  - key: fails\n    command: '{command(3)}'\n"
    )


def _agent(exits: ExitStack, s: Stack, name: str, endpoint: str) -> subprocess.Popen[bytes]:
    args = ["agent", "start", "--endpoint", endpoint, "--token", s.agent_token, "--name", name]
    args += ["--spawn", "2", "--build-path", str(s.work_dir / "builds" / name)]
    return exits.enter_context(
        running(args, kiteline_env(s.data_dir), s.work_dir / f"agent-{name}.log")
    )


def _build(client: httpx.Client, number: int) -> dict[str, Any]:
    answer = client.get(f"/v2/organizations/{ORG}/pipelines/replicas/builds/{number}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _logging(client: httpx.Client, job: dict[str, Any]) -> bool:
    return job["state"] == "running" and "line 2\n" in client.get(job["raw_log_url"]).text


def test_builds_through_two_replicas_survive_a_kill_9_of_one(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database (SQLite is for one machine)")
    if not REDIS_URL:
        pytest.skip("KITELINE_TEST_REDIS_URL is not set: replicas share Redis")
    settings = {
        "redis_url": REDIS_URL,
        "secret_key": "replicas-share-this-secret",
        "agent_heartbeat_interval": "1",
        "agent_lost_after_seconds": "30",
        "worker_interval_seconds": "0.2",
    }
    with stack(database_url, tmp_path, **settings) as s, ExitStack() as exits:
        first = s.url
        port = free_port()
        second_data = tmp_path / "data-second"
        doomed = exits.enter_context(
            server_on(port, second_data, database_url, tmp_path / "second.log", **settings)
        )
        second = f"http://127.0.0.1:{port}"
        other = exits.enter_context(
            httpx.Client(base_url=second, headers=dict(s.client.headers), timeout=30)
        )
        release = tmp_path / "release"
        s.pipeline("Replicas", _pipeline(release))
        # The first replica's agent talks to it directly; the second's goes through a proxy
        # that prefers the second replica and fails over to the first.
        balanced = exits.enter_context(failover_proxy(second, first))
        _agent(exits, s, "on-first", first)
        _agent(exits, s, "on-second", balanced)

        numbers = [s.trigger("replicas")["number"] for _ in range(2)]
        for _ in range(2):
            created = other.post(
                f"/v2/organizations/{ORG}/pipelines/replicas/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
            assert created.status_code == 201, created.text
            numbers.append(created.json()["number"])
        assert numbers == [1, 2, 3, 4]

        # Four agents (two per replica) hold the first four jobs; the other four wait.
        def four_running() -> list[dict[str, Any]] | None:
            jobs = [job for n in numbers for job in _build(s.client, n)["jobs"]]
            running_jobs = [job for job in jobs if _logging(s.client, job)]
            return running_jobs if len(running_jobs) == 4 else None

        running_jobs = wait_until(four_running, timeout=120, what="four jobs to run and log")
        on_second = {
            job["id"] for job in running_jobs if job["agent"]["name"].startswith("on-second")
        }
        assert len(on_second) == 2
        kill(doomed)
        release.touch()  # the rest of their logs, and their finish, go through the survivor

        builds = [s.finished("replicas", n, timeout=300) for n in numbers]
        metrics = httpx.get(f"{first}/metrics", timeout=30).text
        agents = s.client.get(f"/v2/organizations/{ORG}/agents").json()
        logs = [s.client.get(job["log_url"]).json() for build in builds for job in build["jobs"]]

    expected = "".join(f"line {i}\n" for i in range(1, LINES + 1)) + "done\n"
    assert [build["state"] for build in builds] == ["failed"] * 4
    for build in builds:
        outcomes = sorted(
            (job["step_key"], job["state"], job["exit_status"], job["signal_reason"])
            for job in build["jobs"]
        )
        assert outcomes == [("fails", "failed", 3, None), ("passes", "passed", 0, None)]
    for log in logs:  # every line, every chunk
        assert expected in log["content"]
        assert len(log["content"].encode()) == log["size"]
    # The jobs running on the killed replica's agents are among them, finished through the
    # other replica with their real exit status (checked above).
    assert len([job for build in builds for job in build["jobs"] if job["id"] in on_second]) == 2
    assert sorted(agent["connection_state"] for agent in agents) == ["connected"] * 4
    gauges = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "kiteline_jobs"
    }
    assert gauges == {}  # nothing left unfinished
