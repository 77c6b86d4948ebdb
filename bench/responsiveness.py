"""Responsiveness under heavy requests: `/healthz` and an idle agent's ping, timed while the
issue-14 probes run against a real `kiteline server` process.

    python bench/responsiveness.py [--backend sqlite|postgresql] [--steps 20000]
                                   [--aliases 300] [--interval 0.02]

Probes, one after the other: a GraphQL document of `--aliases` introspection aliases (allowed
by the default limits), the same with 1,000 aliases (refused by them), a pipeline of
`--steps` command steps created over REST, a build of it, that build read whole
(`GET …/builds/1`), and the pipeline's build list (which holds it). While each runs, two threads
of this process each send a request every `--interval` seconds: `GET /healthz`, and an idle
agent's `GET /v3/ping`; their latencies (p50/p95/p99/max) are reported per probe, with the
probe's own duration and status. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    progress,
    summary_ms,
)

#: How long the benchmark waits for one probe's answer.
PROBE_TIMEOUT = 300

INTROSPECTION_ALIAS = "a{n}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"


def introspections(count: int) -> str:
    return "{ " + " ".join(INTROSPECTION_ALIAS.format(n=n) for n in range(count)) + " }"


def steps(count: int) -> str:
    return "steps:\n" + "".join(
        f"  - label: step {n}\n    command: echo {n}\n" for n in range(count)
    )


class Prober(threading.Thread):
    """Sends one request every `interval` and keeps each one's latency."""

    def __init__(
        self,
        name: str,
        call: Callable[[httpx.Client], httpx.Response],
        *,
        base_url: str,
        headers: dict[str, str],
        interval: float,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.call = call
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=120)
        self.interval = interval
        self.latencies: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                ok = self.call(self.client).status_code == 200
            except httpx.HTTPError:
                ok = False
            self.latencies.append(time.perf_counter() - started)
            self.failures += 0 if ok else 1
            self.stopping.wait(max(0.0, self.interval - (time.perf_counter() - started)))

    def finish(self) -> dict[str, Any]:
        self.stopping.set()
        self.join()
        self.client.close()
        result: dict[str, Any] = summary_ms(self.latencies)
        result["max_ms"] = round(max(self.latencies, default=0.0) * 1000, 2)
        result["failures"] = self.failures
        return result


def register_idle_agent(url: str, agent_token: str) -> str:
    response = httpx.post(
        f"{url}/v3/register",
        json={"name": "idle", "hostname": "bench", "meta_data": ["queue=idle"]},
        headers={"Authorization": f"Token {agent_token}"},
        timeout=30,
    )
    response.raise_for_status()
    access_token: str = response.json()["access_token"]
    httpx.post(
        f"{url}/v3/connect", headers={"Authorization": f"Token {access_token}"}, timeout=30
    ).raise_for_status()
    return access_token


def under_probes(
    url: str, agent_access_token: str, interval: float, probe: Callable[[], httpx.Response]
) -> dict[str, Any]:
    health = Prober(
        "healthz", lambda c: c.get("/healthz"), base_url=url, headers={}, interval=interval
    )
    ping = Prober(
        "ping",
        lambda c: c.get("/v3/ping"),
        base_url=url,
        headers={"Authorization": f"Token {agent_access_token}"},
        interval=interval,
    )
    health.start()
    ping.start()
    time.sleep(0.5)  # a baseline before the probe starts
    started = time.perf_counter()
    try:
        response = probe()
        status: int | str = response.status_code
        answer_bytes = len(response.content)
    except httpx.HTTPError as error:  # e.g. the client's timeout: the probe never answered
        status, answer_bytes = type(error).__name__, 0
    duration = time.perf_counter() - started
    time.sleep(0.2)
    return {
        "load_average_1m": round(os.getloadavg()[0], 1),
        "probe_seconds": round(duration, 2),
        "status": status,
        "answer_bytes": answer_bytes,
        "healthz": health.finish(),
        "idle_agent_ping": ping.finish(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--aliases", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    exit_on_sigterm()
    import tempfile

    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="kiteline-bench-") as tmp,
        database(args.backend, Path(tmp)) as database_url,
        kiteline(database_url, KITELINE_GRAPHQL_COMPLEXITY_PER_WINDOW="0") as k,
        k.client() as client,
    ):
        client.timeout = httpx.Timeout(PROBE_TIMEOUT)
        idle = register_idle_agent(k.url, k.agent_token)
        probes: list[tuple[str, Callable[[], httpx.Response]]] = [
            (
                f"graphql_{args.aliases}_introspection_aliases",
                lambda: client.post("/v1", json={"query": introspections(args.aliases)}),
            ),
            (
                "graphql_1000_introspection_aliases",
                lambda: client.post("/v1", json={"query": introspections(1000)}),
            ),
            (
                f"pipeline_create_{args.steps}_steps",
                lambda: client.post(
                    f"/v2/organizations/{ORG}/pipelines",
                    json={"name": "big", "configuration": steps(args.steps)},
                ),
            ),
            (
                f"build_create_{args.steps}_steps",
                lambda: client.post(
                    f"/v2/organizations/{ORG}/pipelines/big/builds",
                    json={"commit": "HEAD", "branch": "main"},
                ),
            ),
            (
                f"build_get_{args.steps}_jobs",
                lambda: client.get(f"/v2/organizations/{ORG}/pipelines/big/builds/1"),
            ),
            (
                f"build_list_{args.steps}_jobs",
                lambda: client.get(f"/v2/organizations/{ORG}/pipelines/big/builds"),
            ),
        ]
        for name, probe in probes:
            progress(f"probe {name}")
            results[name] = under_probes(k.url, idle, args.interval, probe)
            progress(f"  {results[name]}")
        info = database_info(database_url)
    emit(
        {
            "benchmark": "responsiveness",
            "backend": args.backend,
            **info,
            "interval_s": args.interval,
            "probes": results,
        }
    )


if __name__ == "__main__":
    main()
