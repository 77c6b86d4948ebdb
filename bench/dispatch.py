"""Dispatch benchmark: idle-agent latency (job runnable -> accepted, from server timestamps),
end-to-end throughput of trivial `true` jobs with real `kiteline agent` processes, and the peak
RSS of the server and of the agent process, idle and under that load.

    python bench/dispatch.py [--backend sqlite|postgresql] [--agents 4] [--jobs 1000]

Latency: one single-job build at a time, each waited for, so the agent is idle and
long-polling when the job becomes runnable. Throughput: builds of `--jobs-per-build` jobs (ten
by default; one is the shape of bench/peer_buildbot.py's builds) created back to back, timed
from the first create to the last build finished, with the median time of each step of a job's
life under that load. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    agents,
    cpu_seconds,
    create_build,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    peak_rss_mb,
    percentile,
    progress,
    summary_ms,
    wait_for,
)
from sqlalchemy import select

from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine
from kiteline.server.pipelines.models import Pipeline


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--agents", type=int, default=4, help="workers of the agent process")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the throughput run")
    parser.add_argument("--jobs-per-build", type=int, default=10)
    parser.add_argument("--latency-samples", type=int, default=50, help="at least 1")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the jobs")
    args = parser.parse_args()
    if args.latency_samples < 1 or args.jobs_per_build < 1:
        parser.error("--latency-samples and --jobs-per-build must be at least 1")
    exit_on_sigterm()
    per_build = args.jobs_per_build
    builds = max(args.jobs // per_build, 1)
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url) as k,
        k.client() as client,
    ):
        one = create_pipeline(client, "One", "steps:\n  - command: 'true'\n")
        batch = create_pipeline(client, "Batch", "steps:\n" + "  - command: 'true'\n" * per_build)
        with agents(k, args.agents) as agent_process:
            time.sleep(2)  # let every agent register and start long-polling
            idle_rss = {
                "server": peak_rss_mb(k.server.pid),
                "agent": peak_rss_mb(agent_process.pid),
            }
            progress(f"dispatch ({args.backend}): {args.latency_samples} latency samples")
            for _ in range(args.latency_samples):
                build = create_build(client, one)
                _wait_finished(client, one, [build["number"]], timeout=60, interval=0.05)
            progress(f"dispatch ({args.backend}): {builds * per_build} jobs")
            cpu_before = {
                "server": cpu_seconds(k.server.pid),
                "agent": cpu_seconds(agent_process.pid),
            }
            started = time.monotonic()
            numbers = [create_build(client, batch)["number"] for _ in range(builds)]
            submitted = time.monotonic() - started
            _wait_finished(client, batch, numbers, timeout=args.timeout, interval=0.5)
            elapsed = time.monotonic() - started
            cpu_ms_per_job = {
                "server": round(
                    1000
                    * (cpu_seconds(k.server.pid) - cpu_before["server"])
                    / (builds * per_build),
                    1,
                ),
                "agent": round(
                    1000
                    * (cpu_seconds(agent_process.pid) - cpu_before["agent"])
                    / (builds * per_build),
                    1,
                ),
            }
            load_rss = {
                "server": peak_rss_mb(k.server.pid),
                "agent": peak_rss_mb(agent_process.pid),
            }
        latencies = [
            _seconds(row.accepted_at, row.runnable_at) for row in asyncio.run(_job_times(url, one))
        ]
        phases = _phases(asyncio.run(_job_times(url, batch)))
        info = database_info(url)
    result: dict[str, Any] = {
        "benchmark": "dispatch",
        "backend": args.backend,
        **info,
        "agents": args.agents,
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
    emit(result)


if __name__ == "__main__":
    main()
