"""The event loop stays free while a large pipeline is parsed and checked (in a process and a
thread, see kit/offload.py): /healthz answers, again and again, before the create finishes.
An ordering assertion, no timing thresholds."""

from __future__ import annotations

import threading

import httpx

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
