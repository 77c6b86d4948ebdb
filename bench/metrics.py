"""What one `/metrics` scrape costs as the database grows: finished jobs seeded with SQL (10k,
100k, … of them), a few hundred jobs waiting in queues and agents registered through the API,
then scrapes one after another, timed from the client, with the server's CPU per scrape.

    python bench/metrics.py [--backend sqlite|postgresql] [--sizes 10000,100000] [--scrapes 50]

The gauges counted at scrape time (jobs by state and queue, agents, webhook and outbox
backlogs) are the database's work; the process's histograms are rendered from memory. Prints
one JSON line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    argument_parser,
    bench_server,
    cpu_seconds,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    progress,
    seed_builds,
    summary_ms,
)

QUEUED_BUILDS = 100  # of 3 jobs each, on three queues: 300 scheduled jobs
AGENTS = 20
PIPELINE = """steps:
  - command: 'true'
  - command: 'true'
    agents: {queue: linux}
  - command: 'true'
    agents: {queue: macos}
"""


def _scrapes(url: str, pid: int, count: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(3):  # warm-up
            assert client.get("/metrics").status_code == 200
        timings = []
        cpu_before = cpu_seconds(pid)
        for _ in range(count):
            began = time.perf_counter()
            answer = client.get("/metrics")
            timings.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
        cpu = cpu_seconds(pid) - cpu_before
    return {
        **summary_ms(timings),
        "server_cpu_ms_per_scrape": round(cpu / count * 1000, 2),
        "bytes": len(answer.content),
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="finished jobs, ascending")
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    exit_on_sigterm()
    results: dict[str, Any] = {}
    with (
        bench_server(args.backend, KITELINE_RUN_WORKERS="false") as (url, k),
        k.client() as client,
    ):
        queued = create_pipeline(client, "Queued", PIPELINE)
        for _ in range(QUEUED_BUILDS):
            create_build(client, queued)
        for number in range(AGENTS):
            registered = httpx.post(
                f"{k.url}/v3/register",
                json={"name": f"bench-{number}", "meta_data": ["queue=default"]},
                headers={"Authorization": f"Token {k.agent_token}"},
            )
            assert registered.status_code == 200, registered.text
        finished = create_pipeline(client, "Finished", "steps:\n  - command: 'true'\n")
        seeded = 0
        for size in (int(size) for size in args.sizes.split(",")):
            progress(f"metrics: seeding {size} finished jobs")
            seed_builds(url, finished, size, already=seeded, with_jobs=size - seeded)
            seeded = size
            results[str(size)] = _scrapes(k.url, k.server.pid, args.scrapes)
        info = database_info(url)
    emit(
        {
            "benchmark": "metrics_scrape",
            "backend": args.backend,
            **info,
            "scheduled_jobs": QUEUED_BUILDS * 3,
            "agents": AGENTS,
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
