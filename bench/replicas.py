"""Replicas benchmark: two `kiteline server` processes on one PostgreSQL database (and Redis
when KITELINE_BENCH_REDIS_URL or KITELINE_TEST_REDIS_URL is set), as tests/e2e/test_replicas.py
runs them.

    python bench/replicas.py [--agents 4] [--jobs 500] [--latency-samples 50]

Idle dispatch through the other replica: an idle agent long-polls replica B while each
single-job build is created through replica A (one at a time, each waited for); latency is
runnable -> accepted from the servers' timestamps, as in bench/dispatch.py; the same with
builds created through B itself is the control. Throughput: `--jobs` trivial `true` jobs in
builds of ten, created back to back, first with one server and `--agents` agents, then with
two replicas and the same agents split between them (builds created through both, half each).
CPU is user+system from /proc of the servers and of the agent processes (with their jobs), so
that the comparison holds on a machine others share; the load average is given beside it.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    agents,
    cpu_seconds,
    create_build,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    free_port,
    kiteline,
    progress,
    stop,
    summary_ms,
    wait_for,
)
from sqlalchemy import select

from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine
from kiteline.server.pipelines.models import Pipeline

SECRET = "bench-replicas-share-this-secret"


def _shared_env(blobs: Path) -> dict[str, str]:
    """What every replica shares beside the database (docs/deployment.md)."""
    env = {"KITELINE_SECRET_KEY": SECRET, "KITELINE_BLOB_DIR": str(blobs)}
    redis_url = os.environ.get("KITELINE_BENCH_REDIS_URL") or os.environ.get(
        "KITELINE_TEST_REDIS_URL"
    )
    if redis_url:
        env["KITELINE_REDIS_URL"] = redis_url
    return env


@contextmanager
def replica(k: Kiteline, **server_env: str) -> Iterator[Kiteline]:
    """A second `kiteline server` on k's database, with its own data directory and port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KITELINE_")}
    env |= {
        "KITELINE_DATA_DIR": str(k.work / "data-replica"),
        "KITELINE_DATABASE_URL": k.settings.resolved_database_url,
        "KITELINE_RATE_LIMIT_ORG_PER_MINUTE": "0",
        **server_env,
    }
    command = [sys.executable, "-m", "kiteline", "server", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env=env,
        stdout=sys.stderr,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if server.poll() is not None:
                raise SystemExit("the replica exited while starting")
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="the replica's start")
        yield replace(k, url=url, server=server)
    finally:
        stop(server)


def _finished(client: httpx.Client, slug: str, number: int) -> bool:
    build = client.get(
        f"/v2/organizations/{ORG}/pipelines/{slug}/builds/{number}",
        params={"exclude_jobs": "true", "exclude_pipeline": "true"},
    ).json()
    return bool(build["finished_at"])


def _wait_all(client: httpx.Client, slug: str, numbers: list[int], timeout: float) -> None:
    pending = sorted(numbers)

    def done() -> bool:
        while pending and _finished(client, slug, pending[0]):
            pending.pop(0)
        return not pending

    wait_for(done, timeout=timeout, what=f"{len(numbers)} builds of {slug}", interval=0.5)


async def _latencies(database_url: str, slug: str) -> list[float]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Job.runnable_at, Job.accepted_at)
                .join(Pipeline, Pipeline.id == Job.pipeline_id)
                .where(Pipeline.slug == slug, Job.accepted_at.is_not(None))
            )
            return [(accepted - runnable).total_seconds() for runnable, accepted in rows]
    finally:
        await engine.dispose()


def _idle_dispatch(through: httpx.Client, slug: str, samples: int) -> None:
    for _ in range(samples):
        number = create_build(through, slug)["number"]
        wait_for(lambda n=number: _finished(through, slug, n), timeout=60, what=f"{slug} #{number}")


def _throughput(
    clients: list[httpx.Client],
    servers: list[subprocess.Popen[bytes]],
    agent_processes: list[subprocess.Popen[bytes]],
    slug: str,
    builds: int,
    timeout: float,
) -> dict[str, Any]:
    """Builds created back to back, round robin through `clients`, until all finished."""
    load_before = os.getloadavg()[0]
    server_cpu = sum(cpu_seconds(p.pid) for p in servers)
    agent_cpu = sum(cpu_seconds(p.pid) for p in agent_processes)
    started = time.monotonic()
    numbers = [create_build(clients[i % len(clients)], slug)["number"] for i in range(builds)]
    _wait_all(clients[0], slug, numbers, timeout)
    elapsed = time.monotonic() - started
    jobs = builds * 10
    return {
        "jobs": jobs,
        "jobs_per_second": round(jobs / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "cpu_ms_per_job": {
            "servers": round(
                1000 * (sum(cpu_seconds(p.pid) for p in servers) - server_cpu) / jobs, 1
            ),
            "agents": round(
                1000 * (sum(cpu_seconds(p.pid) for p in agent_processes) - agent_cpu) / jobs, 1
            ),
        },
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=4, help="in all; even (split in two)")
    parser.add_argument("--jobs", type=int, default=500, help="per throughput run (tens)")
    parser.add_argument("--latency-samples", type=int, default=50, help="at least 1")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args = parser.parse_args()
    if args.agents < 2 or args.agents % 2 or args.latency_samples < 1:
        parser.error("--agents must be even (at least 2) and --latency-samples at least 1")
    exit_on_sigterm()
    builds = max(args.jobs // 10, 1)
    batch_yaml = "steps:\n" + "  - command: 'true'\n" * 10
    with (
        tempfile.TemporaryDirectory() as tmp,
        database("postgresql", Path(tmp)) as url,
    ):
        shared = _shared_env(Path(tmp) / "blobs")
        with kiteline(url, **shared) as first, first.client() as through_first:
            one = create_pipeline(through_first, "One", "steps:\n  - command: 'true'\n")
            alone = create_pipeline(through_first, "Alone", batch_yaml)
            together = create_pipeline(through_first, "Together", batch_yaml)
            progress(f"replicas: one server, {args.agents} agents, {builds * 10} jobs")
            with agents(first, args.agents) as agent_process:
                time.sleep(2)  # let every agent register and start long-polling
                one_server = _throughput(
                    [through_first], [first.server], [agent_process], alone, builds, args.timeout
                )
            with (
                replica(first, **shared) as second,
                second.client() as through_second,
                ExitStack() as exits,
            ):
                progress(f"replicas: idle dispatch, {args.latency_samples} samples each way")
                with agents(second, 1):
                    # Not counted: a first job, so that the agent is up and long-polling.
                    warm = create_pipeline(through_first, "Warm", "steps:\n  - command: 'true'\n")
                    _idle_dispatch(through_second, warm, 1)
                    latency_load = [round(os.getloadavg()[0], 2)]
                    _idle_dispatch(through_first, one, args.latency_samples)
                    same = create_pipeline(through_first, "Same", "steps:\n  - command: 'true'\n")
                    _idle_dispatch(through_second, same, args.latency_samples)
                    latency_load.append(round(os.getloadavg()[0], 2))
                progress(f"replicas: two replicas, {args.agents // 2} agents each")
                processes = [
                    exits.enter_context(agents(k, args.agents // 2)) for k in (first, second)
                ]
                time.sleep(2)
                two_replicas = _throughput(
                    [through_first, through_second],
                    [first.server, second.server],
                    processes,
                    together,
                    builds,
                    args.timeout,
                )
        other = asyncio.run(_latencies(url, one))
        control = asyncio.run(_latencies(url, same))
        info = database_info(url)
    emit(
        {
            "benchmark": "replicas",
            "backend": "postgresql",
            **info,
            "cpus": os.cpu_count(),
            "redis": "KITELINE_REDIS_URL" in shared,
            "idle_dispatch_latency_other_replica": summary_ms(other),
            "idle_dispatch_latency_same_replica": summary_ms(control),
            "latency_load_average_1m": latency_load,
            "agents": args.agents,
            "one_server": one_server,
            "two_replicas": two_replicas,
            "throughput_ratio": round(
                two_replicas["jobs_per_second"] / one_server["jobs_per_second"], 2
            ),
        }
    )


if __name__ == "__main__":
    main()
