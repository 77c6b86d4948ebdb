"""Web UI benchmark: the log viewer's windows of a 50 MB job log, rendered by the server.

    python bench/web_log.py [--backend sqlite|postgresql] [--megabytes 50] [--requests 30]

One build's job gets a log of `--megabytes` of test-runner output (ANSI colours, `_bk;t=`
times on every line, a `---` section every 1000 lines), stored as the agent stores it (1 MiB
chunks, written with SQL), and is marked finished. A signed-in client fetches the viewer with
the log's first window (what opening the job's row loads), a window from the middle
(`after=`) and the last one (`before=` the end), one request at a time; each answer must be a
200 holding its window's lines. Prints one JSON line with the latencies, the server's CPU time
per request and the size of each answer.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    WARM_UP_REQUESTS,
    cpu_seconds,
    create_build,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    progress,
    summary_ms,
)
from sqlalchemy import insert, update
from web_build_page import EMAIL, PASSWORD, _sign_in

from kiteline.server import admin
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine, utcnow
from kiteline.server.logs.models import LogChunk

CHUNK = 1024 * 1024
_LINE = re.compile(r'class="log-line" id="[^"]+-L(\d+)"')


def log_text(megabytes: int) -> bytes:
    """Test-runner output: a `---` section every 1000 lines, colours, a time on every line."""
    lines = []
    size = 0
    number = 0
    started = 1_700_000_000_000
    while size < megabytes * 1024 * 1024:
        stamp = f"\x1b_bk;t={started + number * 7}\x07"
        if number % 1000 == 0:
            line = f"{stamp}--- :pytest: Shard {number // 1000 + 1}\n"
        else:
            line = (
                f"{stamp}tests/test_module_{number % 97}.py::test_case_{number} "
                f"\x1b[32mPASSED\x1b[0m \x1b[36m[{number % 100:3d}%]\x1b[0m\n"
            )
        lines.append(line)
        size += len(line)
        number += 1
    return "".join(lines).encode()


async def _store_log(database_url: str, job_id: uuid.UUID, log: bytes) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for sequence, offset in enumerate(range(0, len(log), CHUNK)):
                data = log[offset : offset + CHUNK]
                await connection.execute(
                    insert(LogChunk).values(
                        id=uuid.uuid4(),
                        job_id=job_id,
                        sequence=sequence,
                        offset=offset,
                        size=len(data),
                        data=data,
                        created_at=utcnow(),
                    )
                )
            now = utcnow()
            await connection.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    state="finished", passed=True, exit_status=0, started_at=now, finished_at=now
                )
            )
    finally:
        await engine.dispose()


def _measure(
    client: httpx.Client, path: str, params: dict[str, Any], requests: int
) -> tuple[list[float], int, int]:
    def fetch() -> tuple[int, int]:
        response = client.get(path, params=params, headers={"HX-Request": "true"})
        lines = len(_LINE.findall(response.text))
        if response.status_code != 200 or lines < 100:
            raise SystemExit(f"the window is wrong: {response.status_code}, {lines} lines")
        return len(response.content), lines

    for _ in range(WARM_UP_REQUESTS):
        fetch()
    latencies = []
    size = lines = 0
    for _ in range(requests):
        began = time.perf_counter()
        size, lines = fetch()
        latencies.append(time.perf_counter() - began)
    return latencies, size, lines


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    log = log_text(args.megabytes)
    with (
        tempfile.TemporaryDirectory(prefix="kiteline-bench-web-log-") as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url) as k,
    ):
        asyncio.run(
            admin.run_in_transaction(k.settings, lambda s: admin.set_password(s, EMAIL, PASSWORD))
        )
        with k.client() as api:
            slug = create_pipeline(api, "Logs", "steps:\n  - command: make test\n")
            build = create_build(api, slug)
        job_id = build["jobs"][0]["id"]
        asyncio.run(_store_log(url, uuid.UUID(job_id), log))
        progress(f"log of {len(log)} bytes in {len(range(0, len(log), CHUNK))} chunks")
        path = f"/{ORG}/{slug}/builds/{build['number']}/jobs/{job_id}/log"
        results: dict[str, Any] = {}
        client = _sign_in(k.url)
        try:
            for name, params in (
                ("first_window", {}),
                ("middle_window", {"after": len(log) // 2, "line": 1}),
                ("last_window", {"before": len(log), "line": 1_000_000_000}),
            ):
                cpu_before = cpu_seconds(k.server.pid)
                latencies, size, lines = _measure(client, path, params, args.requests)
                cpu = cpu_seconds(k.server.pid) - cpu_before
                results[name] = {
                    **summary_ms(latencies),
                    "bytes": size,
                    "lines": lines,
                    "server_cpu_ms_per_request": round(
                        cpu * 1000 / (args.requests + WARM_UP_REQUESTS), 1
                    ),
                }
                progress(f"{name}: p50 {results[name]['p50_ms']} ms, {lines} lines, {size} bytes")
        finally:
            client.close()
        emit(
            {
                "benchmark": "web-log",
                "backend": args.backend,
                "database": database_info(url),
                "log_bytes": len(log),
                "requests": args.requests,
                **results,
            }
        )


if __name__ == "__main__":
    main()
