"""REST benchmark: `GET …/builds?per_page=100` with 10k, 100k and 1M builds in the database,
at 1 and 32 concurrent clients; how p50 grows with the row count.

    python bench/rest.py [--backend sqlite|postgresql] [--sizes 10000,100000,1000000]
                         [--workers N]  (N server processes: PostgreSQL only)

Builds are inserted in bulk with SQL (the newest 1,000 with one job each, so the listed page
renders jobs as usual); the server then runs as its own process. Prints one JSON line.

The load comes from `wrk` when it is on PATH (Debian package `wrk`): the benchmark's Python
client tops out at a few hundred 380 KB answers a second on these cores, about the rate being
measured. Before each wrk run one answer is fetched with httpx and must be a 200 holding 100
builds; during it, answers that are not 2xx and socket errors count as failed. Without wrk the
httpx client (`common.load`) does the load. The JSON says which (`client`), and gives the
server process's CPU time per request over each measurement (`server_cpu_ms_per_request`;
with `--workers` the processes' together).
"""

from __future__ import annotations

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
    WARM_UP_REQUESTS,
    Kiteline,
    argument_parser,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    kiteline,
    load,
    peak_rss_mb,
    progress,
    seed_builds,
    tree_cpu_seconds,
    wrk_available,
    wrk_load,
)

WITH_JOBS = 1_000
#: wrk runs for a time, not a count: this long per measurement (or `--duration`, if shorter).
WRK_SECONDS = 10


def _page_path(slug: str) -> str:
    return f"/v2/organizations/{ORG}/pipelines/{slug}/builds?per_page=100"


def _check_page(k: Kiteline, slug: str) -> None:
    """One answer, fully checked, before wrk (which only sees status codes) loads the server."""
    with k.client() as client:
        response = client.get(_page_path(slug))
    if response.status_code != 200 or len(response.json()) != 100:
        raise SystemExit(f"the page is wrong: {response.status_code} {response.text[:200]}")


def _measure(
    k: Kiteline, slug: str, concurrency: int, requests: int, duration: float, *, use_wrk: bool
) -> dict[str, Any]:
    cpu_before = tree_cpu_seconds(k.server.pid)
    if use_wrk:
        _check_page(k, slug)
        cpu_before = tree_cpu_seconds(k.server.pid)
        result = wrk_load(
            k.url,
            k.api_token,
            path=_page_path(slug),
            concurrency=concurrency,
            duration=min(duration, WRK_SECONDS),
        )
    else:
        result = _measure_httpx(k, slug, concurrency, requests, duration)
    served = result["requests"] + (0 if use_wrk else WARM_UP_REQUESTS)
    cpu_ms = (tree_cpu_seconds(k.server.pid) - cpu_before) * 1000
    result["server_cpu_ms_per_request"] = round(cpu_ms / max(served, 1), 2)
    return result


def _measure_httpx(
    k: Kiteline, slug: str, concurrency: int, requests: int, duration: float
) -> dict[str, Any]:
    path = _page_path(slug)
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
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="build counts, ascending, comma-separated"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=320,
        help="httpx only: requests at 32 clients (a quarter at 1)",
    )
    parser.add_argument(
        "--duration", type=float, default=30, help="at most this many seconds per measurement"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (more than 1: PostgreSQL only)"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    use_wrk = wrk_available()
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.backend, Path(tmp)) as url,
        kiteline(url, workers=args.workers) as k,
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
                "clients_1": _measure(
                    k, slug, 1, args.requests // 4, args.duration, use_wrk=use_wrk
                ),
                "clients_32": _measure(k, slug, 32, args.requests, args.duration, use_wrk=use_wrk),
            }
        server_peak_rss_mb = peak_rss_mb(k.server.pid)
        info = database_info(url)
    first, last = results[str(sizes[0])], results[str(sizes[-1])]
    emit(
        {
            "benchmark": "rest_list_builds",
            "backend": args.backend,
            **info,
            "per_page": 100,
            "workers": args.workers,
            "client": "wrk" if use_wrk else "httpx",
            "server_peak_rss_mb": server_peak_rss_mb,
            "results": results,
            "p50_growth": round(last["clients_1"]["p50_ms"] / first["clients_1"]["p50_ms"], 2),
        }
    )


if __name__ == "__main__":
    main()
