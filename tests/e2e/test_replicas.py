"""Two `kiteline server` replicas and one `kiteline worker` as real processes on one PostgreSQL
database, one Redis and one S3 bucket (moto's S3 server on loopback; the `blob_store` fixture is
the one place that says so):

- an agent long-polling replica B is handed a job created through replica A by that very long
  poll (the wake-up crosses replicas through PostgreSQL LISTEN/NOTIFY);
- agents on both replicas, builds created through both; `kill -9` of one replica while four
  jobs run, and its agents carry on through the other (behind a failover proxy, as behind any
  load balancer): no build, job, log line, artifact or webhook event is lost, and the webhook
  receiver (a real HTTP server, fed by the worker) gets every event exactly once per
  X-Buildkite-Request;
- a job the worker's sweeps make runnable is handed to an agent long-polling a server by that
  very poll (the worker's wake-ups reach the servers the same way);
- the REST rate limit and the GraphQL complexity budget are one budget across replicas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server import admin
from kiteline.server.events.models import Event
from kiteline.server.kit.scopes import SCOPES
from kiteline.settings import Settings
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import free_port
from tests.support.processes import kill, kiteline_env, running, server_on, wait_until
from tests.support.s3 import S3Service
from tests.support.stack import ORG, Stack, stack
from tests.support.tcp_proxy import failover_proxy
from tests.support.webhook_receiver import Received, Receiver, receiver

REDIS_URL = os.environ.get("KITELINE_TEST_REDIS_URL")
LINES = 6
#: What the webhook subscribes to: every build and job event.
EVENTS = [
    "build.scheduled",
    "build.running",
    "build.failing",
    "build.finished",
    "job.scheduled",
    "job.started",
    "job.finished",
]
#: How long the tests' long polls may be held (the servers' agent_ping_max_wait), and how long
#: a test waits for one to be answered by a wake-up (see `_long_poll`).
POLL_SECONDS = 600
ANSWER_WITHIN = 120
#: Quick webhook rounds and retries; the test waits for outcomes, never for a clock.
FAST_WEBHOOKS = {
    "webhook_poll_interval_seconds": "0.05",
    "webhook_backoff_base_seconds": "0.1",
    "webhook_backoff_max_seconds": "0.5",
    "webhook_timeout_seconds": "2",
}


@pytest.fixture
def replicated(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database (SQLite is for one machine)")
    if not REDIS_URL:
        pytest.skip("KITELINE_TEST_REDIS_URL is not set: replicas share Redis")


@pytest.fixture
def blob_store(s3: S3Service) -> dict[str, str]:
    """The settings that point every replica and the worker at one blob store: a fresh prefix
    of moto's S3 bucket (agents upload to it and download from it directly)."""
    return {"blob_url": s3.blob_url()}


def _settings(blob_store: dict[str, str], **more: str) -> dict[str, str]:
    """What every replica and the worker share (docs/deployment.md lists it)."""
    assert REDIS_URL
    return {
        "redis_url": REDIS_URL,
        "secret_key": "replicas-share-this-secret",
        **blob_store,
        **more,
    }


def _pipeline(release: Path) -> str:
    """Two steps that upload an artifact and log two lines, hold until `release` exists (so
    that four agents hold four jobs while a replica is killed), then log the rest, a line each
    half second."""
    after = "; ".join(f'echo "line {i}"; sleep 0.5' for i in range(3, LINES + 1))
    hold = f"while [ ! -f {release} ]; do sleep 0.1; done"
    upload = 'echo "$$BUILDKITE_JOB_ID" > id.txt; buildkite-agent artifact upload id.txt'

    def command(exit_status: int) -> str:
        return (
            f'{upload}; echo "line 1"; echo "line 2"; {hold}; {after}; echo done; '
            f"exit {exit_status}"
        )

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


def _build(client: httpx.Client, pipeline: str, number: int) -> dict[str, Any]:
    answer = client.get(f"/v2/organizations/{ORG}/pipelines/{pipeline}/builds/{number}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _logging(client: httpx.Client, job: dict[str, Any]) -> bool:
    return job["state"] == "running" and "line 2\n" in client.get(job["raw_log_url"]).text


def _webhook(client: httpx.Client, url: str) -> None:
    created = client.post(
        f"/v2/organizations/{ORG}/services",
        json={"provider": "webhook", "settings": {"url": url, "events": EVENTS}},
    )
    assert created.status_code == 201, created.text


def _outbox(database_url: str, data_dir: Path, build_ids: set[str]) -> list[tuple[str, str]]:
    """(event, subject id) of the builds' events as the servers recorded them, in outbox order."""

    async def read(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.scalars(select(Event).order_by(Event.id))
        return [
            (row.name, str(row.subject_id))
            for row in rows
            if row.name in EVENTS and row.data.get("build_id") in build_ids
        ]

    settings = Settings(data_dir=data_dir, database_url=database_url)
    return asyncio.run(admin.run_in_transaction(settings, read))


def _subject(payload: dict[str, Any]) -> tuple[str, str]:
    event = payload["event"]
    return event, payload["job" if event.startswith("job.") else "build"]["id"]


def _by_subject(events: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each build's and job's events, in the order given."""
    by_subject: dict[str, list[str]] = {}
    for name, subject in events:
        by_subject.setdefault(subject, []).append(name)
    return by_subject


def _first_of_each_delivery(requests: list[Received]) -> list[Received]:
    seen: set[str] = set()
    return [r for r in requests if not (r.request_id in seen or seen.add(r.request_id))]


def _finished_delivered(hook: Receiver, build_ids: set[str]) -> bool:
    finished = {
        p["build"]["id"] for r in hook.accepted() if (p := r.json())["event"] == "build.finished"
    }
    return build_ids <= finished


def _register_idle(url: str, agent_token: str, queue: str) -> ScriptedAgent:
    """An agent registered on `url` but not yet connected: its first ping connects it."""
    http = httpx.Client(base_url=f"{url}/v3", timeout=POLL_SECONDS + 30)
    registered = http.post(
        "/register",
        json={"name": "long-poller", "hostname": "test-host", "meta_data": [f"queue={queue}"]},
        headers={"Authorization": f"Token {agent_token}"},
    )
    assert registered.status_code == 200, registered.text
    data = registered.json()
    return ScriptedAgent(http, data["access_token"], data["id"], data["name"])


def _long_poll(agent: ScriptedAgent) -> Callable[[], dict[str, Any]]:
    """Start a ping held for up to POLL_SECONDS; returns a function that waits for its answer.
    A poll answered within ANSWER_WITHIN was woken (it would still be held otherwise: an
    unwoken poll looks for work again only at its end), so tests assert the job it carries."""
    answers: list[dict[str, Any]] = []

    def poll() -> None:
        try:
            answers.append(agent.ping(wait=POLL_SECONDS))
        except httpx.HTTPError as error:
            answers.append({"error": repr(error)})

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()

    def answer() -> dict[str, Any]:
        thread.join(timeout=ANSWER_WITHIN)
        assert answers, f"no wake-up reached the long poll within {ANSWER_WITHIN}s"
        return answers[0]

    return answer


def _connection_state(client: httpx.Client, agent_id: str) -> str:
    return str(client.get(f"/v2/organizations/{ORG}/agents/{agent_id}").json()["connection_state"])


def _handed_a_job_by_its_long_poll(s: Stack, first: str, second: str) -> tuple[str, str]:
    """An agent long-polls the second replica; once that poll has connected it (so the poll is
    holding: it took its wake-up ticket before it looked), a build is created through the
    first. Returns (the job the poll answered with, the build's job)."""
    s.pipeline("Wake", "steps:\n  - command: 'true'\n    agents:\n      queue: wake\n")
    agent = _register_idle(second, s.agent_token, "wake")
    answer = _long_poll(agent)
    wait_until(
        lambda: _connection_state(s.client, agent.id) == "connected",
        what="the long poll to connect its agent",
    )
    with httpx.Client(base_url=first, headers=dict(s.client.headers), timeout=30) as client:
        created = client.post(
            f"/v2/organizations/{ORG}/pipelines/wake/builds",
            json={"commit": "HEAD", "branch": "main"},
        )
        assert created.status_code == 201, created.text
    job = created.json()["jobs"][0]
    handed = answer().get("job", {}).get("id", "none")
    if handed == job["id"]:  # finish it through the second replica, and leave
        taken = agent.take_job()
        assert agent.log(taken, 0, 0, b"woken\n").status_code == 201
        assert agent.finish(taken, "0").status_code == 200
    assert agent.call("POST", "/disconnect").status_code == 200
    return handed, job["id"]


def test_two_replicas_and_a_worker_lose_nothing_when_one_replica_is_killed(
    replicated: None, database_url: str, tmp_path: Path, blob_store: dict[str, str], s3: S3Service
) -> None:
    settings = _settings(
        blob_store,
        run_workers="false",  # the sweeps and webhook delivery run in `kiteline worker`
        agent_heartbeat_interval="1",
        agent_lost_after_seconds="30",
        agent_ping_max_wait=str(POLL_SECONDS),
        worker_interval_seconds="0.2",
        **FAST_WEBHOOKS,
    )
    with (
        receiver() as hook,
        stack(database_url, tmp_path, **settings) as s,
        ExitStack() as exits,
    ):
        first = s.url
        port = free_port()
        doomed = exits.enter_context(
            server_on(
                port, tmp_path / "data-second", database_url, tmp_path / "second.log", **settings
            )
        )
        second = f"http://127.0.0.1:{port}"
        s.start_worker()
        _webhook(s.client, hook.url)

        handed, wake_job = _handed_a_job_by_its_long_poll(s, first, second)

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
            jobs = [job for n in numbers for job in _build(s.client, "replicas", n)["jobs"]]
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
        build_ids = {build["id"] for build in builds} | {s.build("wake", 1)["id"]}
        wait_until(
            lambda: _finished_delivered(hook, build_ids),
            timeout=120,
            what="the build.finished webhook of every build",
        )
        expected_events = _outbox(database_url, s.data_dir, build_ids)
        requests = hook.accepted()
        metrics = httpx.get(f"{first}/metrics", timeout=30).text
        agents = s.client.get(f"/v2/organizations/{ORG}/agents").json()
        logs = [s.client.get(job["log_url"]).json() for build in builds for job in build["jobs"]]
        artifacts = {
            job["id"]: [
                (a["path"], s.client.get(a["download_url"], follow_redirects=True).text)
                for a in s.client.get(job["artifacts_url"]).json()
            ]
            for build in builds
            for job in build["jobs"]
        }

    # The wake-up crossed replicas: the poll held on the second was answered with the job.
    assert handed == wake_job
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
    # Every artifact, uploaded through either replica, is read back through the survivor.
    assert artifacts == {job_id: [("id.txt", f"{job_id}\n")] for job_id in artifacts}
    stored = s3.keys(blob_store["blob_url"])  # in the bucket, each once; no upload left half-way
    assert len([key for key in stored if key.startswith("artifacts/")]) == len(artifacts) == 8
    assert [key for key in stored if key.startswith("incoming/")] == []
    # The jobs running on the killed replica's agents are among them, finished through the
    # other replica with their real exit status (checked above).
    assert len([job for build in builds for job in build["jobs"] if job["id"] in on_second]) == 2
    # Four connected agents (the list shows connected ones): the long poller disconnected.
    assert sorted((a["name"][:9], a["connection_state"]) for a in agents) == [
        ("on-first-", "connected"),
        ("on-first-", "connected"),
        ("on-second", "connected"),
        ("on-second", "connected"),
    ]
    gauges = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "kiteline_jobs"
    }
    assert gauges == {}  # nothing left unfinished
    # Every event of every build reached the receiver once per delivery (a request repeated
    # after a kill carries the same X-Buildkite-Request and the same body), each build's and
    # job's in the order they happened. (Events of different builds and jobs, committed by
    # different replicas at once, may arrive in either order.)
    delivered = [
        _subject(r.json())
        for r in _first_of_each_delivery(requests)
        if r.json().get("build", {}).get("id") in build_ids
    ]
    assert sorted(delivered) == sorted(expected_events)
    assert _by_subject(delivered) == _by_subject(expected_events)
    # Five builds of nine jobs (a build shows `failing` only when a job fails before the last
    # finishes, so that one is left out of the count).
    assert Counter(name for name, _ in expected_events if name != "build.failing") == {
        **{f"build.{name}": 5 for name in ("scheduled", "running", "finished")},
        **{f"job.{name}": 9 for name in ("scheduled", "started", "finished")},
    }
    bodies: dict[str, set[bytes]] = {}
    for request in requests:
        bodies.setdefault(request.request_id, set()).add(request.body)
    assert all(len(variants) == 1 for variants in bodies.values())


def test_a_job_the_worker_makes_runnable_wakes_a_long_poll_on_a_replica(
    replicated: None, database_url: str, tmp_path: Path, blob_store: dict[str, str]
) -> None:
    """The lost-agent sweep runs in `kiteline worker`; the retry it makes of the lost agent's
    job is handed to an agent long-polling a server by that same poll."""
    settings = _settings(
        blob_store,
        run_workers="false",
        agent_heartbeat_interval="1",
        agent_lost_after_seconds="12",  # time enough to start the poll before the sweep
        agent_ping_max_wait=str(POLL_SECONDS),
        worker_interval_seconds="0.2",
    )
    retried = (
        "steps:\n  - command: 'true'\n    retry:\n      automatic:\n        - exit_status: -1\n"
    )
    with stack(database_url, tmp_path, **settings) as s:
        s.start_worker()
        s.pipeline("Lost", retried)
        silent = ScriptedAgent.register(s.url, s.agent_token, name="silent")
        s.trigger("lost")
        held = silent.take_job()  # and then says nothing more: the worker will find it lost
        poller = _register_idle(s.url, s.agent_token, "default")
        answer = _long_poll(poller)
        wait_until(
            lambda: _connection_state(s.client, poller.id) == "connected",
            what="the long poll to connect its agent",
        )
        # The poll took its wake-up ticket before the job it waits for existed.
        state_when_polling = s.build("lost", 1)["jobs"][0]["state"]
        handed = answer().get("job", {}).get("id", "none")
        build = s.build("lost", 1, include_retried_jobs="true")

    assert state_when_polling == "running"
    assert [
        (job["id"] == held["id"], job["state"], job["exit_status"]) for job in build["jobs"]
    ] == [
        (True, "failed", -1),
        (False, "assigned", None),
    ]
    assert handed == build["jobs"][1]["id"]


async def _org_with_token(session: AsyncSession, slug: str) -> str:
    await admin.create_org(session, slug, "Limited")
    await admin.create_user(session, f"dev@{slug}.test", None, slug)
    token = await admin.create_token(session, f"dev@{slug}.test", list(SCOPES), "e2e")
    return str(token["token"])


def test_replicas_count_rate_limits_and_graphql_budgets_together(
    replicated: None, database_url: str, tmp_path: Path, blob_store: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    slug = f"limited-{uuid.uuid4().hex[:12]}"  # Redis outlives the test: its keys must not clash
    token = asyncio.run(
        admin.run_in_transaction(
            Settings(data_dir=data_dir, database_url=database_url),
            lambda session: _org_with_token(session, slug),
        )
    )
    settings = _settings(
        blob_store, rate_limit_org_per_minute="4", graphql_complexity_per_window="3"
    )
    headers = {"Authorization": f"Bearer {token}"}
    with ExitStack() as exits:
        clients = []
        for name in ("first", "second"):
            port = free_port()
            exits.enter_context(
                server_on(port, data_dir, database_url, tmp_path / f"{name}.log", **settings)
            )
            clients.append(
                exits.enter_context(
                    httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
                )
            )
        rest = [client.get(f"/v2/organizations/{slug}") for client in clients * 3]
        query = {"query": f'{{ organization(slug: "{slug}") {{ name }} }}'}
        graphql = [client.post("/v1", json=query) for client in clients * 2]

    assert [r.status_code for r in rest] == [200, 200, 200, 200, 429, 429]
    assert [r.headers["RateLimit-Remaining"] for r in rest] == ["3", "2", "1", "0", "0", "0"]
    assert [r.json().get("current") for r in rest[4:]] == [5, 6]
    assert [r.status_code for r in graphql] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in graphql] == ["2", "1", "0", "0"]
