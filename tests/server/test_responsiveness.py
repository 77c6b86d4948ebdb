"""The event loop stays free while a large pipeline is parsed and checked (in a process and a
thread, see kit/offload.py), and while a build of thousands of jobs is written and rendered
(in slices, kit/slices.py): /healthz answers, again and again, before the create finishes,
and so does an idle agent's ping (on SQLite it reads, not waiting for the write lock the
create holds: agents/sightings.py); the garbage collector makes no full pass over such a
build's objects (kit/collector.py). Ordering assertions, no timing thresholds."""

from __future__ import annotations

import gc
import threading
from typing import Any

import httpx
import pytest

from kiteline.server.kit import collector
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

#: About 180 KB of YAML: parsed off the loop (kit/offload.LARGE_TEXT is 64 KiB).
STEPS = 5000
HEALTH_CHECKS = 5


def _steps(count: int) -> str:
    return "steps:\n" + "".join(
        f"  - label: step {n}\n    command: echo {n}\n" for n in range(count)
    )


def test_healthz_answers_while_a_large_pipeline_is_being_created(server: LiveServer) -> None:
    identity = server.identity("acme")
    configuration = _steps(STEPS)
    events: list[str] = []
    created: list[httpx.Response] = []

    def create() -> None:
        with server.client(identity.api_token) as client:
            client.timeout = httpx.Timeout(600)
            created.append(
                client.post(
                    "/v2/organizations/acme/pipelines",
                    json={"name": "big", "configuration": configuration},
                )
            )
        events.append("created")

    creating = threading.Thread(target=create)
    creating.start()
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
        client.timeout = httpx.Timeout(600)
        pipeline = client.post(
            "/v2/organizations/acme/pipelines",
            json={"name": "big", "configuration": _steps(STEPS)},
        )
        assert pipeline.status_code == 201, pipeline.text
    # Its queue has none of the build's jobs: each of its pings has nothing to take.
    idle = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=idle"])
    events: list[str] = []
    created: list[httpx.Response] = []

    def create() -> None:
        with server.client(identity.api_token) as client:
            client.timeout = httpx.Timeout(600)
            created.append(
                client.post(
                    "/v2/organizations/acme/pipelines/big/builds",
                    json={"commit": "HEAD", "branch": "main"},
                )
            )
        events.append("created")

    creating = threading.Thread(target=create)
    creating.start()
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
        client.timeout = httpx.Timeout(600)
        pipeline = client.post(
            "/v2/organizations/acme/pipelines",
            json={"name": "big", "configuration": _steps(STEPS)},
        )
        assert pipeline.status_code == 201, pipeline.text
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
