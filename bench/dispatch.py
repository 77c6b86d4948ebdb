"""Dispatch benchmark: idle-agent latency (job runnable -> accepted, from server timestamps)
and end-to-end throughput of trivial `true` jobs with real `kiteline agent` processes.

    python bench/dispatch.py [--backend sqlite|postgresql] [--agents 4] [--jobs 1000]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import agents, database, emit, kiteline, peak_rss_mb, summary_ms
from sqlalchemy import select

from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine

JOBS_PER_BUILD = 10


def _wait_finished(client: Any, slug: str, numbers: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(numbers)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"builds did not finish in {timeout}s: {sorted(pending)[:5]}…")
        for number in list(pending):
            build = client.get(
                f"/v2/organizations/bench/pipelines/{slug}/builds/{number}",
                params={"exclude_jobs": "true", "exclude_pipeline": "true"},
            ).json()
            if build["finished_at"]:
                pending.discard(number)
        time.sleep(0.05)


async def _latencies(database_url: str, pipeline_slug_builds: set[str]) -> list[float]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Job.runnable_at, Job.accepted_at).where(
                    Job.build_id.in_(pipeline_slug_builds), Job.accepted_at.is_not(None)
                )
            )
            return [(accepted - runnable).total_seconds() for runnable, accepted in rows]
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args()
    with (
        __import__("tempfile").TemporaryDirectory() as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url) as k,
        k.client() as client,
    ):
        client.post(
            "/v2/organizations/bench/pipelines",
            json={"name": "One", "configuration": "steps:\n  - command: 'true'\n"},
        )
        client.post(
            "/v2/organizations/bench/pipelines",
            json={
                "name": "Ten",
                "configuration": "steps:\n" + "  - command: 'true'\n" * JOBS_PER_BUILD,
            },
        )
        with agents(k, args.agents) as agent_process:
            time.sleep(2)  # let every agent register and start long-polling
            idle_rss = {
                "server": peak_rss_mb(k.server.pid),
                "agent": peak_rss_mb(agent_process.pid),
            }
            latency_builds = set()
            for _ in range(args.latency_samples):
                build = client.post(
                    "/v2/organizations/bench/pipelines/one/builds",
                    json={"commit": "HEAD", "branch": "main"},
                ).json()
                latency_builds.add(build["id"])
                _wait_finished(client, "one", [build["number"]], timeout=60)
            started = time.monotonic()
            numbers = [
                client.post(
                    "/v2/organizations/bench/pipelines/ten/builds",
                    json={"commit": "HEAD", "branch": "main"},
                ).json()["number"]
                for _ in range(args.jobs // JOBS_PER_BUILD)
            ]
            _wait_finished(client, "ten", numbers, timeout=900)
            elapsed = time.monotonic() - started
            load_rss = {
                "server": peak_rss_mb(k.server.pid),
                "agent": peak_rss_mb(agent_process.pid),
            }
        import uuid as _uuid

        latencies = asyncio.run(_latencies(url, {_uuid.UUID(b) for b in latency_builds}))
    emit(
        {
            "benchmark": "dispatch",
            "backend": args.backend,
            "agents": args.agents,
            "idle_dispatch_latency": summary_ms(latencies),
            "jobs": len(numbers) * JOBS_PER_BUILD,
            "jobs_per_second": round(len(numbers) * JOBS_PER_BUILD / elapsed, 1),
            "elapsed_s": round(elapsed, 1),
            "peak_rss_mb_idle": idle_rss,
            "peak_rss_mb_under_load": load_rss,
        }
    )


if __name__ == "__main__":
    main()
