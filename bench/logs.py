"""Log benchmark: chunk ingestion through the agent API, and fetching a 50 MB log back.

    python bench/logs.py [--backend sqlite|postgresql] [--megabytes 50]

An agent (the Kiteline agent's own API client) registers, takes a job and uploads a log of
`--megabytes` MiB of build-output-like text: cut into chunks of the size the server asks for
(`chunks_max_size_bytes`), gzipped as the agent's LogStreamer does, with as many uploads in
flight as it allows. Ingestion MB/s counts uncompressed bytes over the upload time alone (the
gzip time is reported apart). Then the whole log is fetched through the REST API as JSON and as
`.txt`, and by range when the server answers a Range request with 206; when it does not, the
result says so. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    argument_parser,
    bench_server,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    passed,
    peak_rss_mb,
    progress,
    rss_mb,
    take_started_job,
)

from kiteline.agent.api import (
    AgentApi,
    LogChunk,
    Session,
)
from kiteline.agent.log_streamer import MAX_UPLOADS_IN_FLIGHT

MIB = 1024 * 1024
FETCHES = 3
WORDS = ["compiling", "linking", "testing", "cache", "hit", "miss", "warning", "ok", "passed"]


def build_output(size: int) -> bytes:
    """`size` bytes of log-like lines: timestamps, words, paths and hashes (gzips about 3:1)."""
    rng = random.Random(7)
    lines: list[bytes] = []
    total = 0
    number = 0
    while total < size:
        number += 1
        words = " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
        line = (
            f"\x1b[90m2026-11-28T12:{number // 60 % 60:02}:{number % 60:02}Z\x1b[0m "
            f"[{number:07}] {words} src/pkg{rng.randint(0, 999)}/file_{rng.randint(0, 9999)}.py "
            f"{rng.getrandbits(64):016x}\n"
        ).encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


async def _take_job(api: AgentApi) -> tuple[AgentApi, str, int]:
    """Register an agent and accept and start the one job waiting: its API, id, chunk size."""
    runner, job = await take_started_job(api, "bench-logs")
    return runner, job.id, job.chunks_max_size_bytes or MIB


def _chunks(output: bytes, chunk_size: int) -> list[LogChunk]:
    """The log cut and gzipped as the agent's LogStreamer cuts and gzips it."""
    return [
        LogChunk(
            sequence=n + 1,
            offset=offset,
            size=len(output[offset : offset + chunk_size]),
            gzipped=gzip.compress(output[offset : offset + chunk_size]),
        )
        for n, offset in enumerate(range(0, len(output), chunk_size))
    ]


async def _agent(k: Kiteline, output: bytes) -> dict[str, Any]:
    """Take the job, upload the log (as many chunks in flight as the agent allows), finish."""
    async with httpx.AsyncClient(timeout=120) as http:
        runner, job_id, chunk_size = await _take_job(
            AgentApi(http, Session(endpoint=f"{k.url}/v3"), k.agent_token)
        )
        began = time.perf_counter()
        chunks = _chunks(output, chunk_size)
        gzip_s = time.perf_counter() - began
        progress(f"logs: uploading {len(chunks)} chunks ({len(output) // MIB} MiB)")
        slots = asyncio.Semaphore(MAX_UPLOADS_IN_FLIGHT)

        async def send(chunk: LogChunk) -> None:
            async with slots:
                await runner.upload_chunk(job_id, chunk)

        began = time.perf_counter()
        await asyncio.gather(*(send(chunk) for chunk in chunks))
        ingest_s = time.perf_counter() - began
        await runner.finish_job(job_id, passed())
    return {
        "job_id": job_id,
        "chunk_bytes": chunk_size,
        "chunks": len(chunks),
        "gzip_ratio": round(len(output) / sum(len(chunk.gzipped) for chunk in chunks), 2),
        "client_gzip_s": round(gzip_s, 2),
        "ingest_s": round(ingest_s, 2),
        "ingest_mb_per_s": round(len(output) / MIB / ingest_s, 1),
    }


def _timed_fetches(client: httpx.Client, path: str, expect: int, **headers: str) -> list[float]:
    seconds = []
    for _ in range(FETCHES):
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        seconds.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
        size = response.json()["size"] if path.endswith("/log") else len(response.content)
        if size != expect:
            raise SystemExit(f"GET {path} gave {size} bytes, expected {expect}")
    return seconds


def _range(client: httpx.Client, path: str, size: int) -> dict[str, Any]:
    """Fetch the last MiB by range, if the server honours Range at all."""
    wanted = f"bytes={size - MIB}-{size - 1}"
    began = time.perf_counter()
    response = client.get(path, headers={"Range": wanted})
    elapsed = time.perf_counter() - began
    if response.status_code != 206:
        return {
            "supported": False,
            "note": f"Range: {wanted} answered {response.status_code} with the whole log",
            "whole_log_s": round(elapsed, 3),
        }
    return {"supported": True, "last_mib_s": round(elapsed, 3), "bytes": len(response.content)}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--megabytes", type=int, default=50, help="MiB of log")
    args = parser.parse_args()
    exit_on_sigterm()
    size = args.megabytes * MIB
    output = build_output(size)
    with bench_server(args.backend) as (url, k), k.client() as client:
        slug = create_pipeline(client, "Logs", "steps:\n  - command: 'cat big.log'\n")
        build = create_build(client, slug)
        rss_before = rss_mb(k.server.pid)
        ingest = asyncio.run(_agent(k, output))
        rss_after_ingest = peak_rss_mb(k.server.pid)

        progress("logs: fetching")
        log_path = f"/v2/organizations/{ORG}/pipelines/{slug}/builds/{build['number']}"
        log_path += f"/jobs/{ingest.pop('job_id')}/log"
        as_json = _timed_fetches(client, log_path, size)
        as_text = _timed_fetches(client, f"{log_path}.txt", size)
        by_range = _range(client, f"{log_path}.txt", size)
        info = database_info(url)
        server_rss = {
            "before_ingest": rss_before,
            "peak_after_ingest": rss_after_ingest,
            "peak_after_fetches": peak_rss_mb(k.server.pid),
        }
    emit(
        {
            "benchmark": "logs",
            "backend": args.backend,
            **info,
            "log_mib": args.megabytes,
            "uploads_in_flight": MAX_UPLOADS_IN_FLIGHT,
            **ingest,
            "fetch_json_s": round(statistics.median(as_json), 3),
            "fetch_txt_s": round(statistics.median(as_text), 3),
            "fetches": FETCHES,
            "range": by_range,
            "server_rss_mb": server_rss,
        }
    )


if __name__ == "__main__":
    main()
