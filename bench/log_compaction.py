"""Log compaction benchmark: a finished job's 50 MB log moved from its chunks into one object in
the blob store, and reads of a window and a Range before vs after.

    python bench/log_compaction.py [--backend sqlite|postgresql] [--megabytes 50] [--requests 5]

A `kiteline server` (its own compaction sweep off) takes the log from an agent as bench/logs.py
uploads it. Before compaction, then after, it times (median of `--requests`, and the server's
CPU per request from /proc) the web log viewer's first window, its window at the middle
(`after=`), its last window (`before=` the end), and `Range` reads of the first and last 64 KiB
of the log. Compaction itself is `logs.compaction.compact_log` run in this process, as the
server's sweep runs it, timed as wall time and as this process's CPU time (user + system, all
threads: compression runs in threads). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    argument_parser,
    bench_server,
    cpu_seconds,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    progress,
    web_sign_in,
)
from logs import _agent, build_output

from kiteline.server.blobs import FilesystemBlobStore
from kiteline.server.kit.db import create_engine, create_sessionmaker
from kiteline.server.logs import compaction

MIB = 1024 * 1024
SLICE = 64 * 1024


def _reads(
    api: httpx.Client, web: httpx.Client, log: str, page: str, size: int
) -> dict[str, Callable[[], httpx.Response]]:
    return {
        "window_first": lambda: web.get(f"{page}/log", headers={"HX-Request": "true"}),
        "window_middle": lambda: web.get(f"{page}/log", params={"after": size // 2, "line": 1}),
        "window_last": lambda: web.get(f"{page}/log", params={"before": size, "line": 1}),
        "range_first_64k": lambda: api.get(f"{log}.txt", headers={"Range": f"bytes=0-{SLICE - 1}"}),
        "range_last_64k": lambda: api.get(f"{log}.txt", headers={"Range": f"bytes=-{SLICE}"}),
    }


def _measure(
    k: Kiteline, reads: dict[str, Callable[[], httpx.Response]], requests: int
) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    for name, fetch in reads.items():
        fetch()  # warm
        seconds, cpu = [], []
        body = b""
        for _ in range(requests):
            cpu_before = cpu_seconds(k.server.pid)
            began = time.perf_counter()
            response = fetch()
            seconds.append(time.perf_counter() - began)
            cpu.append(cpu_seconds(k.server.pid) - cpu_before)
            if response.status_code not in (200, 206):
                raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")
            body = response.content
        measured[name] = {
            "median_ms": round(statistics.median(seconds) * 1000, 1),
            "server_cpu_ms": round(statistics.median(cpu) * 1000, 1),
            "bytes": len(body),
        }
    return measured


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _compact(k: Kiteline, job_id: str) -> dict[str, Any]:
    engine = create_engine(k.settings.resolved_database_url)
    store = FilesystemBlobStore(k.settings.resolved_blob_dir)
    try:
        cpu_before, began = _process_cpu(), time.perf_counter()
        done = await compaction.compact_log(create_sessionmaker(engine), store, uuid.UUID(job_id))
        wall, cpu = time.perf_counter() - began, _process_cpu() - cpu_before
    finally:
        await engine.dispose()
    if not done:
        raise SystemExit("compact_log found nothing to compact")
    stored = k.settings.resolved_blob_dir / compaction.object_key(uuid.UUID(job_id))
    return {
        "compact_s": round(wall, 3),
        "compact_cpu_s": round(cpu, 3),
        "object_bytes": stored.stat().st_size,
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--megabytes", type=int, default=50, help="MiB of log")
    parser.add_argument("--requests", type=int, default=5, help="timed reads of each kind")
    args = parser.parse_args()
    exit_on_sigterm()
    size = args.megabytes * MIB
    output = build_output(size)
    with (
        bench_server(args.backend, web=True, KITELINE_LOG_COMPACTION="false") as (url, k),
        k.client() as api,
    ):
        slug = create_pipeline(api, "Logs", "steps:\n  - command: 'cat big.log'\n")
        build = create_build(api, slug)
        ingest = asyncio.run(_agent(k, output))
        job_id = ingest["job_id"]
        with closing(web_sign_in(k.url)) as web:
            log = f"/v2/organizations/{ORG}/pipelines/{slug}/builds/{build['number']}"
            log += f"/jobs/{job_id}/log"
            page = f"/{ORG}/{slug}/builds/{build['number']}/jobs/{job_id}"
            reads = _reads(api, web, log, page, size)
            progress("log_compaction: reading from chunks")
            before = _measure(k, reads, args.requests)
            progress("log_compaction: compacting")
            compacted = _compact_in_loop(k, job_id)
            progress("log_compaction: reading from the object")
            after = _measure(k, reads, args.requests)
            whole = api.get(f"{log}.txt").content
            if whole != output:
                raise SystemExit("the compacted log differs from the log uploaded")
        info = database_info(url)
    emit(
        {
            "benchmark": "log_compaction",
            "backend": args.backend,
            **info,
            "log_mib": args.megabytes,
            "block_bytes": compaction.BLOCK_SIZE,
            "zlib_level": compaction.LEVEL,
            **compacted,
            "ratio": round(size / compacted["object_bytes"], 2),
            "compact_mb_per_cpu_s": round(size / MIB / compacted["compact_cpu_s"], 1),
            "requests": args.requests,
            "reads_from_chunks": before,
            "reads_from_object": after,
            "load_average": os.getloadavg()[0],
        }
    )


def _compact_in_loop(k: Kiteline, job_id: str) -> dict[str, Any]:
    return asyncio.run(_compact(k, job_id))


if __name__ == "__main__":
    main()
