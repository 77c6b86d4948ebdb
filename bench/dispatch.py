"""Dispatch benchmark: idle-agent latency (job runnable -> accepted, from server timestamps),
end-to-end throughput of trivial `true` jobs with real `kiteline agent` processes, and the peak
RSS of the server and of the agent process, idle and under that load.

    python bench/dispatch.py [--backend sqlite|postgresql] [--agents 4] [--jobs 1000]
                             [--workers N]  (N server processes: PostgreSQL only)

Latency: one single-job build at a time, each waited for, so the agent is idle and
long-polling when the job becomes runnable. Throughput: builds of `--jobs-per-build` jobs (ten
by default; one is the shape of bench/peer_buildbot.py's builds) created back to back, timed
from the first create to the last build finished, with the median time of each step of a job's
life under that load.

With `--workers N` the server is N processes on one socket (decision 0025): each request and
each agent's long poll lands on whichever process accepts it, so a job is often created
through one process while the idle agent waits in a long poll on another, which hears of the
job through PostgreSQL's LISTEN/NOTIFY (as a second replica does, bench/replicas.py). The
server's CPU is then that of every process (`tree_cpu_seconds`) and its peak RSS that of the
largest worker process (the supervisor only waits on them).

Per job, by endpoint (`--profile-builds`, after the agents stopped): a second server runs in a
thread of this process on the same database, and single-job builds are taken through it one
call at a time as our agent makes them (create the build, then ping, accept, start, one log
chunk, finish). Each call's server CPU is that thread's CPU clock across it (the database's
own processes not counted) and its SQL statements are counted by a SQLAlchemy listener (every
statement sent, not the `BEGIN`/`COMMIT` around them). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import os
import statistics
import sys
import threading
import time
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    agents,
    argument_parser,
    bench_server,
    connected_agent,
    cpu_seconds,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    in_process_server,
    passed,
    peak_rss_mb,
    percentile,
    progress,
    summary_ms,
    tree_cpu_seconds,
    wait_for,
)
from sqlalchemy import select

from kiteline.agent.api import (
    AgentApi,
    LogChunk,
    Session,
    utc_timestamp,
)
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine
from kiteline.server.pipelines.models import Pipeline
from kiteline.settings import Settings

STEPS = ("create", "ping", "accept", "start", "chunk", "finish")


def _wait_finished(
    client: httpx.Client, slug: str, numbers: list[int], *, timeout: float, interval: float
) -> None:
    """Poll until every build finished; polls are few, as they load the server being measured."""
    pending = set(numbers)

    def all_finished() -> bool:
        for number in sorted(pending):
            build = client.get(
                f"/v2/organizations/{ORG}/pipelines/{slug}/builds/{number}",
                params={"exclude_jobs": "true", "exclude_pipeline": "true"},
            ).json()
            if not build["finished_at"]:
                return False  # builds finish roughly in order: ask again about this one first
            pending.discard(number)
        return True

    wait_for(
        all_finished, timeout=timeout, what=f"{len(numbers)} builds finishing", interval=interval
    )


async def _job_times(database_url: str, pipeline_slug: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(
                    Job.agent_id, Job.runnable_at, Job.accepted_at, Job.started_at, Job.finished_at
                )
                .join(Pipeline, Pipeline.id == Job.pipeline_id)
                .where(Pipeline.slug == pipeline_slug, Job.finished_at.is_not(None))
            )
            return list(rows)
    finally:
        await engine.dispose()


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _phases(rows: list[Any]) -> dict[str, float]:
    """Median milliseconds of each step of a job's life under load (server timestamps), and of
    an agent's gap between finishing one job and accepting its next."""
    gaps: list[float] = []
    by_agent: dict[Any, list[Any]] = {}
    for row in rows:
        by_agent.setdefault(row.agent_id, []).append(row)
    for jobs in by_agent.values():
        jobs.sort(key=lambda job: job.accepted_at)
        gaps += [_seconds(b.accepted_at, a.finished_at) for a, b in itertools.pairwise(jobs)]
    phases = {
        "runnable_to_accepted": [_seconds(r.accepted_at, r.runnable_at) for r in rows],
        "accepted_to_started": [_seconds(r.started_at, r.accepted_at) for r in rows],
        "started_to_finished": [_seconds(r.finished_at, r.started_at) for r in rows],
        "agent_finished_to_next_accepted": gaps,
    }
    return {name: round(percentile(values, 0.5) * 1000, 1) for name, values in phases.items()}


def _measured_server(
    settings: Settings,
) -> AbstractContextManager[tuple[str, list[str], threading.Thread]]:
    """A server in a thread of this process, its heap frozen as `kiteline server`'s is: its
    URL, the list its SQL statements go to (not the liveness heartbeat's), and its thread."""
    return in_process_server(
        settings, counted=lambda statement: "serving_processes" not in statement, as_served=True
    )


async def _profile_calls(
    k: Kiteline,
    url: str,
    slug: str,
    statements: list[str],
    thread: threading.Thread,
    count: int,
    *,
    show: bool = False,
) -> dict[str, dict[str, float]]:
    """Single-job builds taken through the server one call at a time: each call's server CPU
    (ms, mean) and statements (mean), after two builds of warm-up. `show`: the last build's
    statements, call by call, to stderr."""
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    cpu: dict[str, list[float]] = {step: [] for step in STEPS}
    sql: dict[str, list[int]] = {step: [] for step in STEPS}
    headers = {"Authorization": f"Bearer {k.api_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        agent = await connected_agent(
            AgentApi(http, Session(f"{url}/v3"), k.agent_token), "profile"
        )
        chunk = b"+ true\n"
        measured: dict[str, tuple[float, int]] = {}
        for n in range(count + 2):
            measured.clear()

            async def step(name: str, call: Any, last: bool = n == count + 1) -> Any:
                await asyncio.sleep(0.005)  # let the server finish what followed the last answer
                statements.clear()
                before = time.clock_gettime(clock)
                result = await call
                await asyncio.sleep(0.005)
                measured[name] = (time.clock_gettime(clock) - before, len(statements))
                if show and last:
                    print(f"--- {name}: {len(statements)} statements", file=sys.stderr)
                    for statement in statements:
                        print("   ", " ".join(statement.split())[:300], file=sys.stderr)
                return result

            created = await step(
                "create",
                http.post(
                    f"/v2/organizations/{ORG}/pipelines/{slug}/builds",
                    json={"commit": "HEAD", "branch": "main"},
                ),
            )
            if created.status_code != 201:
                raise SystemExit(f"creating a build: {created.status_code} {created.text}")
            ping = await step("ping", agent.ping(wait=5))
            if ping.job is None:
                raise SystemExit("the profile's ping was given no job")
            job = await step("accept", agent.accept_job(ping.job.id))
            runner = agent.with_token(job.token)
            await step("start", runner.start_job(job.id, started_at=utc_timestamp()))
            await step(
                "chunk",
                runner.upload_chunk(
                    job.id,
                    LogChunk(sequence=1, offset=0, size=len(chunk), gzipped=gzip.compress(chunk)),
                ),
            )
            await step("finish", runner.finish_job(job.id, passed()))
            if n >= 2:
                for name, (seconds, statement_count) in measured.items():
                    cpu[name].append(seconds * 1000)
                    sql[name].append(statement_count)
    result = {
        "server_cpu_ms": {name: round(statistics.mean(v), 2) for name, v in cpu.items()},
        "statements": {name: round(statistics.mean(v), 1) for name, v in sql.items()},
    }
    result["server_cpu_ms"]["total"] = round(sum(result["server_cpu_ms"].values()), 2)
    result["statements"]["total"] = round(sum(result["statements"].values()), 1)
    return result


def _server_rss_mb(k: Kiteline, workers: int) -> float:
    """The server's peak RSS: its process's, or with `--workers` its largest worker's."""
    if workers == 1:
        return peak_rss_mb(k.server.pid)
    children = [
        int(child)
        for task in Path(f"/proc/{k.server.pid}/task").glob("*/children")
        for child in task.read_text().split()
    ]
    return max((peak_rss_mb(child) for child in children), default=peak_rss_mb(k.server.pid))


def _agents_run(
    args: argparse.Namespace, k: Kiteline, client: httpx.Client, url: str, one: str
) -> dict[str, Any]:
    """Idle-dispatch latency and throughput with a real agent process."""
    per_build = args.jobs_per_build
    builds = max(args.jobs // per_build, 1)
    batch = create_pipeline(client, "Batch", "steps:\n" + "  - command: 'true'\n" * per_build)
    with agents(k, args.agents) as agent_process:
        time.sleep(2)  # let every agent register and start long-polling
        idle_rss = {
            "server": _server_rss_mb(k, args.workers),
            "agent": peak_rss_mb(agent_process.pid),
        }
        progress(f"dispatch ({args.backend}): {args.latency_samples} latency samples")
        for _ in range(args.latency_samples):
            build = create_build(client, one)
            _wait_finished(client, one, [build["number"]], timeout=60, interval=0.05)
        progress(f"dispatch ({args.backend}): {builds * per_build} jobs")
        server_cpu = tree_cpu_seconds if args.workers > 1 else cpu_seconds
        cpu_before = {
            "server": server_cpu(k.server.pid),
            "agent": cpu_seconds(agent_process.pid),
        }
        started = time.monotonic()
        numbers = [create_build(client, batch)["number"] for _ in range(builds)]
        submitted = time.monotonic() - started
        _wait_finished(client, batch, numbers, timeout=args.timeout, interval=0.5)
        elapsed = time.monotonic() - started
        cpu_ms_per_job = {
            name: round(1000 * (clock(pid) - cpu_before[name]) / (builds * per_build), 1)
            for name, clock, pid in (
                ("server", server_cpu, k.server.pid),
                ("agent", cpu_seconds, agent_process.pid),
            )
        }
        load_rss = {
            "server": _server_rss_mb(k, args.workers),
            "agent": peak_rss_mb(agent_process.pid),
        }
    latencies = [
        _seconds(row.accepted_at, row.runnable_at) for row in asyncio.run(_job_times(url, one))
    ]
    phases = _phases(asyncio.run(_job_times(url, batch)))
    return {
        "agents": args.agents,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "idle_dispatch_latency": summary_ms(latencies),
        "jobs": builds * per_build,
        "jobs_per_build": per_build,
        "jobs_per_second": round(builds * per_build / elapsed, 1),
        "median_ms_under_load": phases,
        # The agent's includes its job processes (bash and what it runs).
        "cpu_ms_per_job": cpu_ms_per_job,
        "submit_s": round(submitted, 1),
        "elapsed_s": round(elapsed, 1),
        "peak_rss_mb_idle": idle_rss,
        "peak_rss_mb_under_load": load_rss,
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--agents", type=int, default=4, help="workers of the agent process")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the throughput run")
    parser.add_argument("--jobs-per-build", type=int, default=10)
    parser.add_argument("--latency-samples", type=int, default=50, help="at least 1")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the jobs")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (more than 1: PostgreSQL only)"
    )
    parser.add_argument(
        "--profile-builds", type=int, default=50, help="single-job builds for the per-call split"
    )
    parser.add_argument(
        "--only-profile", action="store_true", help="skip the latency and throughput runs"
    )
    parser.add_argument(
        "--show-statements",
        action="store_true",
        help="print the last profiled build's SQL statements, call by call, to stderr",
    )
    args = parser.parse_args()
    if args.latency_samples < 1 or args.jobs_per_build < 1:
        parser.error("--latency-samples and --jobs-per-build must be at least 1")
    exit_on_sigterm()
    result: dict[str, Any] = {
        "benchmark": "dispatch",
        "backend": args.backend,
        "workers": args.workers,
    }
    with bench_server(args.backend, workers=args.workers) as (url, k), k.client() as client:
        one = create_pipeline(client, "One", "steps:\n  - command: 'true'\n")
        if not args.only_profile:
            result.update(_agents_run(args, k, client, url, one))
        if args.profile_builds > 0:
            progress(f"dispatch ({args.backend}): {args.profile_builds} builds by endpoint")
            with _measured_server(k.settings) as (measured_url, statements, thread):
                result["per_job_by_call"] = asyncio.run(
                    _profile_calls(
                        k,
                        measured_url,
                        one,
                        statements,
                        thread,
                        count=args.profile_builds,
                        show=args.show_statements,
                    )
                )
        result.update(database_info(url))
    emit(result)


if __name__ == "__main__":
    main()
