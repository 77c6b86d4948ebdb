"""The event loop stays free while a large pipeline is parsed and checked (in a process and a
thread, see kit/offload.py), and while a build of thousands of jobs is written and rendered
(in slices, kit/slices.py): /healthz answers, again and again, before the create finishes,
and so does an idle agent's ping (on SQLite it reads, not waiting for the write lock the
create holds: agents/sightings.py); the garbage collector makes no full pass over such a
build's objects (kit/collector.py). Ordering assertions, no timing thresholds."""

from __future__ import annotations

import gc
import json
import re
import threading
import uuid
from base64 import b64decode
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kiteline.server.builds import transitions
from kiteline.server.builds.models import Build
from kiteline.server.events.models import Event
from kiteline.server.jobs.models import Job
from kiteline.server.kit import collector
from kiteline.server.kit.db import create_engine
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer
from tests.support.run_async import run_async

#: About 180 KB of YAML: parsed off the loop (kit/offload.LARGE_TEXT is 64 KiB).
STEPS = 5000
HEALTH_CHECKS = 5


def _steps(count: int) -> str:
    return "steps:\n" + "".join(
        f"  - label: step {n}\n    command: echo {n}\n" for n in range(count)
    )


def _big_pipeline(client: httpx.Client, configuration: str) -> None:
    """Pipeline `big` of `acme`, made of `configuration`, through `client` (its timeout then
    long enough for a large build's create and read)."""
    client.timeout = httpx.Timeout(600)
    pipeline = client.post(
        "/v2/organizations/acme/pipelines", json={"name": "big", "configuration": configuration}
    )
    assert pipeline.status_code == 201, pipeline.text


def _post_in_thread(
    server: LiveServer,
    token: str,
    path: str,
    body: dict[str, Any],
    answers: list[httpx.Response],
    events: list[str],
) -> threading.Thread:
    """POST `body` from a started thread, its answer put in `answers` and "created" in `events`
    once it is there, so the test sees what else answered before it."""

    def post() -> None:
        with server.client(token) as client:
            client.timeout = httpx.Timeout(600)
            answers.append(client.post(path, json=body))
        events.append("created")

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_healthz_answers_while_a_large_pipeline_is_being_created(server: LiveServer) -> None:
    identity = server.identity("acme")
    configuration = _steps(STEPS)
    events: list[str] = []
    created: list[httpx.Response] = []
    creating = _post_in_thread(
        server,
        identity.api_token,
        "/v2/organizations/acme/pipelines",
        {"name": "big", "configuration": configuration},
        created,
        events,
    )
    with httpx.Client(base_url=server.url, timeout=600) as health:
        while creating.is_alive() and events.count("healthz") < HEALTH_CHECKS:
            if health.get("/healthz").status_code == 200 and creating.is_alive():
                events.append("healthz")
    creating.join()

    assert created[0].status_code == 201, created[0].text
    assert events == ["healthz"] * HEALTH_CHECKS + ["created"]
    assert len(created[0].json()["steps"]) == STEPS


def test_healthz_and_an_idle_agents_ping_answer_while_a_build_of_many_jobs_is_created(
    server: LiveServer,
) -> None:
    identity = server.identity("acme")
    with server.client(identity.api_token) as client:
        _big_pipeline(client, _steps(STEPS))
    # Its queue has none of the build's jobs: each of its pings has nothing to take.
    idle = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=idle"])
    events: list[str] = []
    created: list[httpx.Response] = []
    creating = _post_in_thread(
        server,
        identity.api_token,
        "/v2/organizations/acme/pipelines/big/builds",
        {"commit": "HEAD", "branch": "main"},
        created,
        events,
    )
    idle.http.timeout = httpx.Timeout(600)
    with httpx.Client(base_url=server.url, timeout=600) as health:
        while creating.is_alive() and (
            events.count("healthz") < HEALTH_CHECKS or events.count("ping") < HEALTH_CHECKS
        ):
            if health.get("/healthz").status_code == 200 and creating.is_alive():
                events.append("healthz")
            if idle.ping() == {"action": "idle"} and creating.is_alive():
                events.append("ping")
    creating.join()

    assert created[0].status_code == 201, created[0].text
    assert events == ["healthz", "ping"] * HEALTH_CHECKS + ["created"]
    build = created[0].json()
    assert len(build["jobs"]) == STEPS
    assert [job["name"] for job in build["jobs"][:2]] == ["step 0", "step 1"]
    # The answer streamed in pieces is the build as it is read back, byte for byte.
    with server.client(identity.api_token) as client:
        client.timeout = httpx.Timeout(600)
        again = client.get(f"/v2/organizations/acme/pipelines/big/builds/{build['number']}")
    assert again.headers["content-length"] == str(len(again.content))
    assert again.json()["jobs"] == build["jobs"]


def test_no_full_garbage_collection_runs_while_a_build_of_many_jobs_is_created_or_read(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs in this process: the collector's calls here are its calls. A full
    pass over a large build's objects held the loop up to 0.45 s (kit/collector.py)."""
    # Longer than this machine's load could stretch the gaps between the work's phases.
    monkeypatch.setattr(collector, "LINGER_SECONDS", 600.0)
    identity = server.identity("acme")
    collections: list[tuple[int, bool]] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append((info["generation"], collector.full_collections_held()))

    with server.client(identity.api_token) as client:
        _big_pipeline(client, _steps(STEPS))
        gc.collect()  # the next full pass would be tens of thousands of allocations away
        gc.callbacks.append(note)
        try:
            created = client.post(
                "/v2/organizations/acme/pipelines/big/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
            while_created = list(collections)
            gc.collect()
            collections.clear()
            read = client.get("/v2/organizations/acme/pipelines/big/builds/1")
            while_read = list(collections)
        finally:
            gc.callbacks.remove(note)

    assert created.status_code == 201, created.text
    assert read.status_code == 200, read.text
    assert len(read.json()["jobs"]) == STEPS
    for made in (while_created, while_read):
        assert (2, False) not in made and (2, True) not in made
        assert (0, True) in made  # held while the build's objects were alive
    # Once no hold is engaged and the linger has lapsed (a hold's end with none now), the
    # next collection puts the thresholds back.
    monkeypatch.setattr(collector, "LINGER_SECONDS", 0.0)
    with collector.Hold(engaged=True):
        pass
    gc.collect(0)
    assert not collector.full_collections_held()


# -- A large build written as rows is the build the ORM path writes -----------------------------

#: Over creation.LARGE_BUILD jobs, with every way `advance` settles a new build's jobs: runnable
#: at once, waiting on a key or behind a wait, skipped, a wait step passed at once, a block
#: step reached (the build then waits on it: `blocked`), `depends_on` a skipped step.
_MIXED = (
    "steps:\n"
    "  - label: first\n    key: first\n    command: echo first\n"
    "  - label: skipped\n    key: skipped\n    command: echo no\n    skip: true\n"
    "  - label: after skipped\n    command: echo x\n    depends_on: skipped\n"
    + "".join(
        f"  - label: step {n}\n    command: echo {n}\n    agents:\n      queue: q{n % 3}\n"
        f"    env:\n      N: '{n}'\n    priority: {n % 2}\n"
        + ("    depends_on: first\n" if n % 7 == 0 else "")
        for n in range(1100)
    )
    + "  - wait\n  - label: after wait\n    command: echo after\n"
)
_BLOCKED_FIRST = (
    "steps:\n  - wait\n  - block: Release\n    blocked_state: running\n  - wait\n"
    + "".join(f"  - label: step {n}\n    command: echo {n}\n" for n in range(1100))
)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalized(value: Any, ids: dict[str, str]) -> Any:
    """`value` with each id named by its first appearance and each time by its presence."""
    if isinstance(value, dict):
        # A GraphQL id is its row's id encoded: named by that id's name.
        return {
            key: _normalized(b64decode(item).decode() if key == "graphql_id" else item, ids)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_normalized(item, ids) for item in value]
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, uuid.UUID | str):
        text = str(value)
        text = _UUID.sub(lambda found: ids.setdefault(found.group(0), f"<id {len(ids)}>"), text)
        return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", text)
    return value


async def _written(database_url: str, number: int, last_event: int) -> tuple[Any, Any, Any]:
    """Build `number`'s row, its jobs' rows in order, and the events written after
    `last_event`, normalized (ids by first appearance, times by presence)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            build = (
                (await connection.execute(select(Build).where(Build.number == number)))
                .one()
                ._asdict()
            )
            jobs = [
                row._asdict()
                for row in await connection.execute(
                    select(Job).where(Job.build_id == build["id"]).order_by(Job.position)
                )
            ]
            events = [
                {"name": name, "subject_id": subject_id, "data": data}
                for name, subject_id, data in await connection.execute(
                    select(Event.name, Event.subject_id, Event.data)
                    .where(Event.id > last_event)
                    .order_by(Event.id)
                )
            ]
    finally:
        await engine.dispose()
    ids: dict[str, str] = {}
    build.pop("number")
    return _normalized(build, ids), _normalized(jobs, ids), _normalized(events, ids)


async def _last_event(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.max(Event.id))) or 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("configuration", [_MIXED, _BLOCKED_FIRST], ids=["mixed", "blocked"])
def test_a_large_build_written_as_rows_is_the_build_the_orm_path_writes(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, configuration: str
) -> None:
    """The server runs in this process: raising the threshold makes the second build of the
    same pipeline take the ORM path (`add_jobs`, then `advance`)."""
    identity = server.identity("acme")
    url = server.settings.resolved_database_url
    written = []
    answers = []
    with server.client(identity.api_token) as client:
        _big_pipeline(client, configuration)
        for number, threshold in ((1, transitions.LARGE_BUILD), (2, 10**9)):
            monkeypatch.setattr(transitions, "LARGE_BUILD", threshold)
            last = run_async(lambda: _last_event(url))
            created = client.post(
                "/v2/organizations/acme/pipelines/big/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
            assert created.status_code == 201, created.text
            assert created.json()["number"] == number
            written.append(run_async(lambda: _written(url, number, last)))  # noqa: B023
            answer = created.json()
            answer.pop("number")
            answer.pop("pipeline")  # its counts: the first build is still there
            answers.append(
                _normalized(
                    json.loads(json.dumps(answer).replace(f"/builds/{number}", "/builds/N")), {}
                )
            )

    (build_rows, job_rows, events), (build_orm, jobs_orm, events_orm) = written
    assert len(job_rows) > 1000
    assert build_rows == build_orm
    assert job_rows == jobs_orm
    assert events == events_orm
    assert answers[0] == answers[1]
