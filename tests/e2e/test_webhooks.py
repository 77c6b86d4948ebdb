"""End to end: real `kiteline server` and `kiteline agent` processes deliver webhooks to a real
HTTP receiver — through failures, a SIGKILLed server, blocked, canceled and lost-agent builds —
and a receiver that never answers slows nothing down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server import admin
from kiteline.server.events.models import Event
from kiteline.server.kit.scopes import SCOPES
from kiteline.settings import Settings
from tests.support.live_server import free_port
from tests.support.processes import kiteline_env, running, wait_until
from tests.support.seed import verify_webhook
from tests.support.stack import ORG, stack
from tests.support.webhook_receiver import Received, Receiver, receiver

#: Quick rounds and retries; the tests wait for outcomes, never for a clock.
FAST = {
    "webhook_poll_interval_seconds": "0.05",
    "webhook_backoff_base_seconds": "0.1",
    "webhook_backoff_max_seconds": "0.5",
    "webhook_timeout_seconds": "1",
}
#: For receivers that hang for as long as a build takes: retry them for as long as that.
PATIENT = FAST | {"webhook_max_attempts": "10000", "webhook_disable_after_failures": "0"}
SERVICES = f"/v2/organizations/{ORG}/services"
TWO_STEPS = "steps:\n  - command: echo one\n  - wait\n  - command: echo two\n"


def _webhook(client: httpx.Client, url: str, **settings: Any) -> dict[str, Any]:
    response = client.post(
        SERVICES, json={"provider": "webhook", "settings": {"url": url, **settings}}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _subject(payload: dict[str, Any]) -> tuple[str, str]:
    """(event, the id of what it is about): the job for job events, else the build or agent."""
    event = payload["event"]
    family = event.partition(".")[0]
    return event, payload["job" if family == "job" else family]["id"]


def _build_id(payload: dict[str, Any]) -> str | None:
    return payload.get("build", {}).get("id")


def _outbox(database_url: str, data_dir: Path, build_id: str) -> list[tuple[str, str]]:
    """The build's and its jobs' events as the server recorded them, in outbox order."""

    async def read(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.scalars(select(Event).order_by(Event.id))
        return [
            (row.name, str(row.subject_id)) for row in rows if row.data.get("build_id") == build_id
        ]

    settings = Settings(data_dir=data_dir, database_url=database_url)
    return asyncio.run(admin.run_in_transaction(settings, read))


def _unique(requests: list[Received]) -> list[Received]:
    """The first accepted request of each delivery (retries repeat the X-Buildkite-Request)."""
    seen: set[str] = set()
    return [r for r in requests if not (r.request_id in seen or seen.add(r.request_id))]


def _for_build(hook: Receiver, build_id: str) -> list[dict[str, Any]]:
    return [r.json() for r in _unique(hook.accepted()) if _build_id(r.json()) == build_id]


def _until_build_finished(hook: Receiver, build_id: str, *, blocked: bool = False) -> None:
    wait_until(
        lambda: any(
            p["event"] == "build.finished" and p["build"]["blocked"] == blocked
            for p in _for_build(hook, build_id)
        ),
        what="the build.finished webhook",
    )


def test_a_failing_receiver_gets_every_event_of_a_build_in_order(
    database_url: str, tmp_path: Path
) -> None:
    with (
        receiver(lambda index, _h, _b: 500 if index < 3 else 200) as hook,
        stack(database_url, tmp_path, **FAST) as s,
    ):
        webhook = _webhook(s.client, hook.url)
        s.pipeline("Two", TWO_STEPS)
        s.start_agent("runner")
        build = s.trigger("two")
        s.finished("two", 1)
        _until_build_finished(hook, build["id"])
        expected = _outbox(database_url, s.data_dir, build["id"])
        requests = list(hook.requests)
    token = webhook["settings"]["token"]
    assert [r.status for r in requests[:4]] == [500, 500, 500, 200]
    assert len({r.request_id for r in requests[:4]}) == 1  # one delivery, four attempts
    for request in requests:
        assert verify_webhook(request.body, request.headers["x-buildkite-signature"], token)
    delivered = [_subject(p) for p in _for_build(hook, build["id"])]
    assert delivered == expected
    assert [name for name, _ in expected] == [
        "build.scheduled",
        "job.scheduled",
        "job.started",
        "build.running",
        "job.finished",
        "job.scheduled",
        "job.started",
        "job.finished",
        "build.finished",
    ]


@contextmanager
def _server(
    data_dir: Path, database_url: str, log: Path, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `kiteline server` process this test may kill."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = kiteline_env(
        data_dir, database_url, **{f"KITELINE_{k.upper()}": v for k, v in settings.items()}
    )
    with running(["server", "--port", str(port)], env, log) as process:
        wait_until(lambda: _healthy(url), what="the server to answer /healthz")
        yield process, url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _identity(session: AsyncSession) -> tuple[str, str]:
    await admin.create_org(session, ORG, "Acme")
    await admin.create_user(session, "dev@acme.test", None, ORG)
    token = await admin.create_token(session, "dev@acme.test", list(SCOPES), "e2e")
    agent = await admin.create_agent_token(session, ORG, "e2e")
    return token["token"], agent["token"]


def test_deliveries_pending_when_the_server_is_killed_arrive_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    api_token, agent_token = asyncio.run(
        admin.run_in_transaction(Settings(data_dir=data_dir, database_url=database_url), _identity)
    )
    headers = {"Authorization": f"Bearer {api_token}"}
    arrivals: list[str] = []  # the X-Buildkite-Request of each request, as it arrives
    release = threading.Event()

    def respond(_index: int, headers: dict[str, str], _body: bytes) -> int:
        arrivals.append(headers["x-buildkite-request"])
        release.wait(timeout=120)  # until the server is dead: its attempts hang, then time out
        return 200

    with receiver(respond) as hook:
        first = _server(data_dir, database_url, tmp_path / "first.log", **PATIENT)
        with first as (server, url), httpx.Client(base_url=url, headers=headers) as client:
            webhook = _webhook(client, hook.url)
            client.post(
                f"/v2/organizations/{ORG}/pipelines",
                json={"name": "Two", "configuration": TWO_STEPS},
            ).raise_for_status()
            agent_args = ["agent", "start", "--endpoint", url, "--token", agent_token]
            agent_args += ["--build-path", str(tmp_path / "builds")]
            with running(agent_args, kiteline_env(data_dir), tmp_path / "agent.log"):
                build = client.post(
                    f"/v2/organizations/{ORG}/pipelines/two/builds",
                    json={"commit": "HEAD", "branch": "main"},
                ).json()
                wait_until(lambda: client.get(build["url"]).json()["finished_at"], what="the build")
            queued = wait_until(
                lambda: _queued_through(client, webhook, "build.finished"),
                what="the build's deliveries to be queued",
            )
            wait_until(lambda: arrivals, what="an attempt in flight")
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        before_kill = list(arrivals)
        release.set()  # the held attempts now "succeed" on dead connections: duplicates
        expected = _outbox(database_url, data_dir, build["id"])
        with _server(data_dir, database_url, tmp_path / "second.log", **PATIENT) as (_, url):
            try:
                _until_build_finished(hook, build["id"])
            except AssertionError as timed_out:  # say where the deliveries stood
                path = "/v2/" + webhook["deliveries_url"].split("/v2/", 1)[1]
                deliveries = httpx.get(url + path, headers=headers).text
                log = (tmp_path / "second.log").read_text()[-4000:]
                raise AssertionError(f"deliveries: {deliveries}\nlog: {log}") from timed_out
        after_restart = arrivals[len(before_kill) :]
        requests = hook.accepted()
    ping = queued[-1]
    assert ping["event"] == "ping"
    assert all(d["state"] == "pending" for d in queued)
    assert set(before_kill) == {ping["id"]}  # the ping held the queue: nothing else was tried
    assert after_restart[0] == ping["id"]  # the attempt the kill cut off, made again
    assert [_subject(p) for p in _for_build(hook, build["id"])] == expected  # nothing lost
    bodies: dict[str, set[bytes]] = {}
    for request in requests:
        bodies.setdefault(request.request_id, set()).add(request.body)
    assert all(len(variants) == 1 for variants in bodies.values())  # a duplicate is identical


def _queued_through(
    client: httpx.Client, webhook: dict[str, Any], event: str
) -> list[dict[str, Any]] | None:
    """The webhook's deliveries, newest first, once one for `event` is among them."""
    items: list[dict[str, Any]] = client.get(webhook["deliveries_url"]).json()["items"]
    return items if any(d["event"] == event for d in items) else None


def _events_of(hook: Receiver, build: dict[str, Any]) -> list[dict[str, Any]]:
    _until_build_finished(hook, build["id"])
    return _for_build(hook, build["id"])


def test_a_blocked_build_finishes_blocked_then_its_unblock_activates_the_job(
    database_url: str, tmp_path: Path
) -> None:
    pipeline = "steps:\n  - command: echo before\n  - block: Ship?\n  - command: echo after\n"
    with receiver() as hook, stack(database_url, tmp_path, **FAST) as s:
        _webhook(s.client, hook.url)
        s.pipeline("Gate", pipeline)
        s.start_agent("runner")
        build = s.trigger("gate")
        _until_build_finished(hook, build["id"], blocked=True)
        block = s.build("gate", 1)["jobs"][1]
        unblocked = s.client.put(f"{block['unblock_url']}", json={})
        assert unblocked.status_code == 200, unblocked.text
        s.finished("gate", 1)
        events = _events_of(hook, build)
    finishes = [
        (p["build"]["state"], p["build"]["blocked"])
        for p in events
        if p["event"] == "build.finished"
    ]
    assert finishes == [("passed", True), ("passed", False)]
    names = [p["event"] for p in events]
    assert names.index("job.activated") > names.index("build.finished")
    activated = events[names.index("job.activated")]["job"]
    assert (activated["id"], activated["type"], activated["state"]) == (
        block["id"],
        "manual",
        "unblocked",
    )


def test_a_canceled_build_sends_its_jobs_and_its_own_finish_as_canceled(
    database_url: str, tmp_path: Path
) -> None:
    with receiver() as hook, stack(database_url, tmp_path, **FAST) as s:
        _webhook(s.client, hook.url)
        s.pipeline("Long", "steps:\n  - command: sleep 300\n")
        s.start_agent("runner", cancel_grace_period="2")
        build = s.trigger("long")
        wait_until(lambda: s.build("long", 1)["jobs"][0]["state"] == "running", what="start")
        canceled = s.client.put(f"{build['url']}/cancel")
        assert canceled.status_code == 200, canceled.text
        s.finished("long", 1)
        events = _events_of(hook, build)
    last_job, last_build = events[-2:]
    assert (last_job["event"], last_job["job"]["state"]) == ("job.finished", "canceled")
    assert (last_build["event"], last_build["build"]["state"]) == ("build.finished", "canceled")


def test_a_lost_agent_is_announced_and_its_job_finishes_with_minus_one(
    database_url: str, tmp_path: Path
) -> None:
    with (
        receiver() as hook,
        stack(
            database_url,
            tmp_path,
            agent_lost_after_seconds="3",
            agent_heartbeat_interval="1",
            worker_interval_seconds="0.2",
            **FAST,
        ) as s,
    ):
        _webhook(s.client, hook.url)
        s.pipeline("Lost", "steps:\n  - command: sleep 300\n")
        victim = s.start_agent("victim")
        build = s.trigger("lost")
        wait_until(lambda: s.build("lost", 1)["jobs"][0]["state"] == "running", what="start")
        os.killpg(victim.pid, signal.SIGKILL)
        events = _events_of(hook, build)
        agent_events = [
            (p["event"], p["agent"]["name"], p["agent"]["connection_state"])
            for p in (r.json() for r in _unique(hook.accepted()))
            if p["event"].startswith("agent.")
        ]
    assert agent_events == [
        ("agent.connected", "victim", "connected"),
        ("agent.lost", "victim", "lost"),
    ]
    finished = next(p for p in events if p["event"] == "job.finished")["job"]
    assert (finished["state"], finished["exit_status"]) == ("failed", -1)
    assert events[-1]["build"]["state"] == "failed"


def test_a_receiver_that_never_answers_slows_no_request_and_no_build(
    database_url: str, tmp_path: Path
) -> None:
    release = threading.Event()

    def hang(_index: int, _headers: dict[str, str], _body: bytes) -> int:
        release.wait(timeout=120)
        return 200

    with receiver(hang) as hook, stack(database_url, tmp_path, **PATIENT) as s:
        webhook = _webhook(s.client, hook.url)
        s.pipeline("Two", TWO_STEPS)
        s.start_agent("runner")
        for _ in range(3):
            s.trigger("two")
        builds = [s.finished("two", number) for number in (1, 2, 3)]
        listed = s.client.get(f"/v2/organizations/{ORG}/builds")
        # Everything above completed while every webhook attempt hung: none was answered.
        assert hook.accepted() == []
        attempts = s.client.get(webhook["deliveries_url"]).json()["items"][-1]["attempts"]
        release.set()
        _until_build_finished(hook, builds[2]["id"])
    assert [b["state"] for b in builds] == ["passed", "passed", "passed"]
    assert listed.status_code == 200 and len(listed.json()) == 3
    assert all(a["error"] == "no complete answer within 1s" for a in attempts)
