"""REST benchmark: `GET …/builds?per_page=100` with 10k, 100k and 1M builds in the database,
at 1 and 32 concurrent clients; how p50 grows with the row count.

    python bench/rest.py [--backend sqlite|postgresql] [--sizes 10000,100000,1000000]

Builds are inserted in bulk with SQL (the newest 1,000 with one job each, so the listed page
renders jobs as usual); the server then runs as its own process. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    load,
    progress,
    seed_builds,
)

WITH_JOBS = 1_000


def _measure(
    k: Kiteline, slug: str, concurrency: int, requests: int, duration: float
) -> dict[str, Any]:
    path = f"/v2/organizations/{ORG}/pipelines/{slug}/builds?per_page=100"
    answers = itertools.count()

    def check(response: httpx.Response) -> bool:
        # Parsing 380 KB of JSON costs the client (on the same cores) about as much as the
        # server's work: every tenth answer is parsed and counted, the others only looked at.
        if response.status_code != 200 or not response.content.startswith(b'[{"id":'):
            return False
        return next(answers) % 10 != 0 or len(response.json()) == 100

    return load(
        k.url,
        k.api_token,
        send=lambda client: client.get(path),
        check=check,
        concurrency=concurrency,
        requests=requests,
        duration=duration,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="build counts, ascending, comma-separated"
    )
    parser.add_argument(
        "--requests", type=int, default=320, help="requests at 32 clients (a quarter at 1)"
    )
    parser.add_argument(
        "--duration", type=float, default=30, help="at most this many seconds per measurement"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url) as k,
        k.client() as client,
    ):
        slug = create_pipeline(client, "List", "steps:\n  - command: 'true'\n")
        seeded = 0
        for size in sizes:
            progress(f"rest: seeding {size} builds")
            began = time.monotonic()
            seed_builds(url, slug, size, already=seeded, with_jobs=WITH_JOBS)
            seeded = size
            seed_s = round(time.monotonic() - began, 1)
            progress(f"rest: {size} builds seeded in {seed_s}s; loading")
            results[str(size)] = {
                "seed_s": seed_s,
                "clients_1": _measure(k, slug, 1, args.requests // 4, args.duration),
                "clients_32": _measure(k, slug, 32, args.requests, args.duration),
            }
        info = database_info(url)
    first, last = results[str(sizes[0])], results[str(sizes[-1])]
    emit(
        {
            "benchmark": "rest_list_builds",
            "backend": args.backend,
            **info,
            "per_page": 100,
            "results": results,
            "p50_growth": round(last["clients_1"]["p50_ms"] / first["clients_1"]["p50_ms"], 2),
        }
    )


if __name__ == "__main__":
    main()
