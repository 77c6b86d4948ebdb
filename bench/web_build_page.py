"""Web UI benchmark: the build page of a build with 500 jobs, rendered by the server.

    python bench/web_build_page.py [--backend sqlite|postgresql] [--jobs 500] [--requests 50]

A pipeline of groups of parallel steps (`--jobs` jobs in all) gets one build through REST; its
jobs are then marked finished with SQL (staggered times, so the waterfall has bars of every
length). A signed-in client fetches `/{org}/{pipeline}/builds/1` one request at a time: the
whole page, and the block a live update fetches (`HX-Target: build_live`). Each answer must be
a 200 listing every job. The server keeps a rendered block until its build changes (decision
0039): `page` and `live_block` move the build's revision (from this process, with SQL) before
each request, so that the block is rendered each time, as for a build that changes; the
`_cached` ones do not. Prints one JSON line with the latencies and the server's CPU time per
request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    WARM_UP_REQUESTS,
    argument_parser,
    bench_server,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    measured,
    progress,
    web_sign_in,
)
from sqlalchemy import select, update

from kiteline.server.builds.models import Build
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine

STEPS_PER_GROUP = 10
PARALLELISM = 10


def configuration(jobs: int) -> str:
    """Groups of STEPS_PER_GROUP steps, each PARALLELISM parallel jobs, with waits between."""
    lines = ["steps:"]
    steps = max(jobs // PARALLELISM, 1)
    for step in range(steps):
        if step % STEPS_PER_GROUP == 0:
            if step:
                lines.append("  - wait")
            lines += [f"  - group: Group {step // STEPS_PER_GROUP + 1}", "    steps:"]
        lines += [
            f"      - label: 'Step {step + 1}'",
            f"        command: 'make test SHARD={step}'",
            f"        parallelism: {PARALLELISM}",
        ]
    return "\n".join(lines) + "\n"


async def _finish_jobs(database_url: str) -> None:
    """Every command job finished and passed, started and finished a little apart."""
    engine = create_engine(database_url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(Job.id, Job.position).where(Job.type == "script").order_by(Job.position)
                )
            ).all()
            for job_id, position in rows:
                began = start + timedelta(seconds=position)
                await connection.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(
                        state="finished",
                        passed=True,
                        exit_status=0,
                        runnable_at=start,
                        started_at=began,
                        finished_at=began + timedelta(seconds=30 + position % 60),
                    )
                )
            await connection.execute(
                update(Job).where(Job.type == "waiter").values(state="finished", passed=True)
            )
            await connection.execute(
                update(Build).values(
                    state="passed", started_at=start, finished_at=start + timedelta(hours=1)
                )
            )
    finally:
        await engine.dispose()


class Bumper:
    """Moves the build's revision from this process (no CPU of the server's), so that the
    server renders its live block again instead of serving the one it keeps."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(database_url)

    def __call__(self) -> None:
        self.loop.run_until_complete(self._bump())

    async def _bump(self) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(Build).values(revision=Build.revision + 1))

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


def _measure(
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    jobs: int,
    requests: int,
    before: Bumper | None,
) -> tuple[list[float], dict[str, int]]:
    """`requests` timed fetches after WARM_UP_REQUESTS, each after `before` (not timed)."""
    latencies: list[float] = []
    size = 0
    for index in range(WARM_UP_REQUESTS + requests):
        if before is not None:
            before()
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = time.perf_counter() - began
        shown = response.text.count('class="job-row ')
        if response.status_code != 200 or shown != jobs:
            raise SystemExit(f"the page is wrong: {response.status_code}, {shown} job rows")
        if index >= WARM_UP_REQUESTS:
            latencies.append(elapsed)
        size = len(response.content)
    return latencies, {"bytes": size}


def main() -> None:
    exit_on_sigterm()
    args = argument_parser(__doc__, jobs=500, requests=50).parse_args()
    with bench_server(args.backend, web=True) as (url, k):
        with k.client() as api:
            slug = create_pipeline(api, "Big", configuration(args.jobs))
            build = create_build(api, slug)
        command_jobs = sum(1 for job in build["jobs"] if job["type"] == "script")
        rows = len(build["jobs"])
        progress(f"build with {command_jobs} command jobs ({rows} rows with the waits)")
        asyncio.run(_finish_jobs(url))
        path = f"/{ORG}/{slug}/builds/{build['number']}"
        results: dict[str, Any] = {}
        client = web_sign_in(k.url)
        bump = Bumper(url)
        live = {"HX-Request": "true", "HX-Target": "build_live"}
        try:
            for name, headers, before in (
                ("page", {}, bump),
                ("live_block", live, bump),
                ("page_cached", {}, None),
                ("live_block_cached", live, None),
            ):
                measure = partial(_measure, client, path, headers, rows, args.requests, before)
                results[name] = measured(k, name, args.requests, measure)
        finally:
            client.close()
            bump.close()
        emit(
            {
                "benchmark": "web-build-page",
                "backend": args.backend,
                "database": database_info(url),
                "jobs": command_jobs,
                "requests": args.requests,
                **results,
            }
        )


if __name__ == "__main__":
    main()
