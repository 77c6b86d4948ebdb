"""Responsiveness under heavy requests: `/healthz` and an idle agent's ping, timed while the
issue-14 probes run against a real `kiteline server` process.

    python bench/responsiveness.py [--backend sqlite|postgresql] [--steps 20000]
                                   [--aliases 300] [--interval 0.02] [--settle 0] [--loop-turns]
                                   [--probes graphql,pipeline,build_create,build_get,build_list]

Probes, one after the other: a GraphQL document of `--aliases` introspection aliases (allowed
by the default limits), the same with 1,000 aliases (refused by them), a pipeline of
`--steps` command steps created over REST, a build of it, that build read whole
(`GET …/builds/1`), and the pipeline's build list (which holds it). While each runs, two threads
of this process each send a request every `--interval` seconds: `GET /healthz`, and an idle
agent's `GET /v3/ping`; their latencies (p50/p95/p99/max) are reported per probe, with the
probe's own duration and status, the server process's CPU time during it and its RSS after it.
`--probes` runs some of them (a build's probes create the pipeline first). `--settle S` waits
S seconds before each probe: a build of 20,000 jobs leaves its 20,001 events to be fanned out
to webhooks for several seconds after its create answers, which otherwise falls into the read's
and the list's windows (their CPU and their waits).

`--loop-turns` runs the server under `bench/loop_sampler.py` and adds, per probe, its event
loop's turns: the loop thread's CPU time between two turns of a task that wakes every 5 ms
(`time.thread_time()`: how long the loop was held, which the machine's load does not change),
as longest, p99 and how many over 100 ms; and the garbage collector's full (generation 2)
passes: how many, the longest and their sum in CPU time. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    cpu_seconds,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    peak_rss_mb,
    percentile,
    progress,
    rss_mb,
    stop,
    summary_ms,
)

#: How long the benchmark waits for one probe's answer.
PROBE_TIMEOUT = 300

#: The sampler's tick (bench/loop_sampler.TICK_SECONDS).
TICK_SECONDS = 0.005

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
    url: str,
    agent_access_token: str,
    interval: float,
    probe: Callable[[], httpx.Response],
    server_pid: int,
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
    cpu = cpu_seconds(server_pid)
    window_start = time.monotonic()
    started = time.perf_counter()
    try:
        response = probe()
        status: int | str = response.status_code
        answer_bytes = len(response.content)
    except httpx.HTTPError as error:  # e.g. the client's timeout: the probe never answered
        status, answer_bytes = type(error).__name__, 0
    duration = time.perf_counter() - started
    window = (window_start, time.monotonic())
    time.sleep(0.2)
    return {
        "load_average_1m": round(os.getloadavg()[0], 1),
        "probe_seconds": round(duration, 2),
        "status": status,
        "answer_bytes": answer_bytes,
        "server_cpu_seconds": round(cpu_seconds(server_pid) - cpu, 2),
        "server_rss_mb": rss_mb(server_pid),
        "server_peak_rss_mb": peak_rss_mb(server_pid),
        "healthz": health.finish(),
        "idle_agent_ping": ping.finish(),
        "window": window,
    }


def loop_turns(sampled: dict[str, Any], window: tuple[float, float]) -> dict[str, Any]:
    """The sampler's turns and full collections within `window` (monotonic seconds)."""
    start, end = window
    turns = [(at, cpu, wall) for at, cpu, wall, _ in sampled["turns"] if start <= at <= end]
    cpu = [each[1] for each in turns]
    # Off the CPU without waiting for one, less the tick asked for: blocked, mostly on the GIL.
    blocked = [
        max(0.0, wall - cpu - delay - TICK_SECONDS)
        for at, cpu, wall, delay in sampled["turns"]
        if start <= at <= end
    ]
    waited_for_cpu = [delay for at, _, _, delay in sampled["turns"] if start <= at <= end]
    # Each turn less the collections (of any generation) the loop's thread made in it.
    on_loop = sorted((at, seconds) for at, _, seconds, _, loop in sampled["collections"] if loop)
    ends = [at for at, _ in on_loop]
    less_gc = [
        cpu
        - sum(
            seconds
            for _, seconds in on_loop[bisect_right(ends, at - wall) : bisect_right(ends, at)]
        )
        for at, cpu, wall in turns
    ]
    full = [
        (seconds, collected, on_loop)
        for at, generation, seconds, collected, on_loop in sampled["collections"]
        if start <= at <= end and generation == 2
    ]
    return {
        "turns": len(turns),
        "cpu_longest_ms": round(max(cpu, default=0.0) * 1000, 1),
        "cpu_p99_ms": round(percentile(cpu, 0.99) * 1000, 1),
        "cpu_over_100ms": sum(1 for each in cpu if each > 0.1),
        "cpu_less_gc_longest_ms": round(max(less_gc, default=0.0) * 1000, 1),
        "cpu_less_gc_p99_ms": round(percentile(less_gc, 0.99) * 1000, 1),
        "wall_longest_ms": round(max((each[2] for each in turns), default=0.0) * 1000, 1),
        "wall_p99_ms": round(percentile([each[2] for each in turns], 0.99) * 1000, 1),
        "blocked_longest_ms": round(max(blocked, default=0.0) * 1000, 1),
        "blocked_p99_ms": round(percentile(blocked, 0.99) * 1000, 1),
        "blocked_total_ms": round(sum(blocked) * 1000, 1),
        "waited_for_cpu_total_ms": round(sum(waited_for_cpu) * 1000, 1),
        "gc_full_collections": len(full),
        "gc_full_on_loop": sum(1 for each in full if each[2]),
        "gc_full_longest_ms": round(max((each[0] for each in full), default=0.0) * 1000, 1),
        "gc_full_total_ms": round(sum(each[0] for each in full) * 1000, 1),
        "gc_full_collected": sum(each[1] for each in full),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--aliases", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait before each probe, so that the work a probe leaves behind (the "
        "webhook fan-out of a large build's events) is done before the next is measured",
    )
    parser.add_argument("--loop-turns", action="store_true")
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="with --loop-turns: the server's sys.setswitchinterval (an experiment's knob)",
    )
    parser.add_argument(
        "--long-turn",
        type=float,
        help="with --loop-turns: note the loop's stack in turns past this CPU time (0.05 s)",
    )
    parser.add_argument(
        "--samples-out", type=Path, help="with --loop-turns: keep the sampler's raw JSON here"
    )
    parser.add_argument(
        "--probes",
        default="graphql,pipeline,build_create,build_get,build_list",
        help="comma-separated: graphql, pipeline, build_create, build_get, build_list",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    import json
    import tempfile

    wanted = set(args.probes.split(","))
    results: dict[str, Any] = {}
    windows: dict[str, tuple[float, float]] = {}
    tmp = tempfile.TemporaryDirectory(prefix="kiteline-bench-")
    sampled_path = Path(tmp.name) / "loop-turns.json"
    launcher = (
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "loop_sampler.py"),
            str(sampled_path),
            *(["--switch-interval", str(args.switch_interval)] if args.switch_interval else []),
            *(["--long-turn", str(args.long_turn)] if args.long_turn else []),
        ]
        if args.loop_turns
        else None
    )
    with (
        tmp,
        database(args.backend, Path(tmp.name)) as database_url,
        kiteline(database_url, launcher=launcher, KITELINE_GRAPHQL_COMPLEXITY_PER_WINDOW="0") as k,
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
        kinds = ["graphql", "graphql", "pipeline", "build_create", "build_get", "build_list"]
        if wanted & {"build_create", "build_get", "build_list"}:
            wanted.add("pipeline")
        if wanted & {"build_get", "build_list"}:
            wanted.add("build_create")
        for kind, (name, probe) in zip(kinds, probes, strict=True):
            if kind not in wanted:
                continue
            progress(f"probe {name}")
            time.sleep(args.settle)
            results[name] = under_probes(k.url, idle, args.interval, probe, k.server.pid)
            windows[name] = results[name].pop("window")
            progress(f"  {results[name]}")
        info = database_info(database_url)
        if args.loop_turns:
            stop(k.server)  # the sampler writes its turns as the server stops
            sampled = json.loads(sampled_path.read_text())
            if args.samples_out:
                args.samples_out.write_text(json.dumps({"windows": windows, **sampled}))
            for name, window in windows.items():
                results[name]["loop_turns"] = loop_turns(sampled, window)
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
