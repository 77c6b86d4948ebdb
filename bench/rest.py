"""REST benchmark: `GET …/builds?per_page=100` with 10k, 100k and 1M builds in the database,
at 1 and 32 concurrent clients; how p50 grows with the row count.

    python bench/rest.py [--backend sqlite|postgresql] [--sizes 10000,100000,1000000]

Builds are inserted in bulk with SQL (the newest 1,000 with one job each, so the listed page
renders jobs as usual); the server then runs as its own process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import database, emit, kiteline, percentile
from sqlalchemy import insert, select, update

from kiteline.server.builds.models import Build
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine
from kiteline.server.pipelines.models import Pipeline

BATCH = 5_000
WITH_JOBS = 1_000


async def _seed(database_url: str, total: int, already: int) -> None:
    """Add builds up to `total` to pipeline `list`, oldest first."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            pipeline = (
                await connection.execute(select(Pipeline).where(Pipeline.slug == "list"))
            ).one()
            start = datetime(2020, 1, 1, tzinfo=UTC)
            for offset in range(already, total, BATCH):
                rows: list[dict[str, Any]] = []
                jobs: list[dict[str, Any]] = []
                for number in range(offset + 1, min(offset + BATCH, total) + 1):
                    build_id = uuid.uuid4()
                    created = start + timedelta(seconds=number)
                    rows.append(
                        {
                            "id": build_id,
                            "organization_id": pipeline.organization_id,
                            "pipeline_id": pipeline.id,
                            "number": number,
                            "state": "passed",
                            "blocked": False,
                            "commit": "HEAD",
                            "branch": "main",
                            "message": f"build {number}",
                            "env": {},
                            "source": "api",
                            "author": {},
                            "clean_checkout": False,
                            "pipeline_configuration": "",
                            "created_at": created,
                            "scheduled_at": created,
                            "started_at": created,
                            "finished_at": created,
                        }
                    )
                    if number > total - WITH_JOBS:
                        jobs.append(
                            {
                                "id": uuid.uuid4(),
                                "organization_id": pipeline.organization_id,
                                "pipeline_id": pipeline.id,
                                "build_id": build_id,
                                "step_id": uuid.uuid4(),
                                "position": 0,
                                "type": "script",
                                "label": "test",
                                "command": "true",
                                "state": "finished",
                                "agent_query_rules": ["queue=default"],
                                "env": {},
                                "depends_on": [],
                                "step": {},
                                "definition": {},
                                "exit_status": 0,
                                "passed": True,
                                "created_at": created,
                                "started_at": created,
                                "finished_at": created,
                            }
                        )
                await connection.execute(insert(Build), rows)
                if jobs:
                    await connection.execute(insert(Job), jobs)
            await connection.execute(
                update(Pipeline).where(Pipeline.id == pipeline.id).values(last_build_number=total)
            )
    finally:
        await engine.dispose()


async def _load(url: str, token: str, concurrency: int, requests: int) -> dict[str, Any]:
    path = "/v2/organizations/bench/pipelines/list/builds?per_page=100"
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:
        await client.get(path)  # warm up

        async def worker(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200 or len(response.json()) != 100:
                    raise SystemExit(f"unexpected response {response.status_code}")

        began = time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=320)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url) as k,
        k.client() as client,
    ):
        client.post(
            "/v2/organizations/bench/pipelines",
            json={"name": "List", "configuration": "steps:\n  - command: 'true'\n"},
        )
        seeded = 0
        for size in sizes:
            began = time.monotonic()
            asyncio.run(_seed(url, size, seeded))
            seeded = size
            results[str(size)] = {
                "seed_s": round(time.monotonic() - began, 1),
                "clients_1": asyncio.run(_load(k.url, k.api_token, 1, args.requests // 4)),
                "clients_32": asyncio.run(_load(k.url, k.api_token, 32, args.requests)),
            }
    first, last = results[str(sizes[0])], results[str(sizes[-1])]
    emit(
        {
            "benchmark": "rest_list_builds",
            "backend": args.backend,
            "per_page": 100,
            "results": results,
            "p50_growth": round(last["clients_1"]["p50_ms"] / first["clients_1"]["p50_ms"], 2),
        }
    )


if __name__ == "__main__":
    main()
