"""Web UI benchmark: a pipeline's page (its builds list) with many builds, rendered by the server.

    python bench/web_pipeline_page.py [--backend sqlite|postgresql] [--builds 10000] [--requests 50]

A pipeline gets `--builds` finished builds straight with SQL (the newest 1,000 with 3 jobs
each). A signed-in client fetches `/{org}/{pipeline}` one request at a time: the first page
(30 builds, as REST's list), the block a live update fetches (`HX-Target: builds`), a deep page
(`?page=100`) and a filtered one (`?branch=main&state=passed`). Each answer must be a 200 with
30 build rows. Prints one JSON line with the latencies and the server's CPU time per request.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    argument_parser,
    bench_server,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    measured,
    progress,
    seed_builds,
    timed,
    web_sign_in,
)

ROWS = 30  # the list's page, as REST's default per_page
STEPS = "steps:\n  - command: make test\n"


def _measure(
    client: httpx.Client, path: str, headers: dict[str, str], requests: int
) -> tuple[list[float], dict[str, int]]:
    def fetch() -> httpx.Response:
        response = client.get(path, headers=headers)
        shown = response.text.count('<li class="row build-row"')
        if response.status_code != 200 or shown != ROWS:
            raise SystemExit(f"{path} is wrong: {response.status_code}, {shown} build rows")
        return response

    latencies, last = timed(fetch, requests)
    return latencies, {"bytes": len(last.content)}


def main() -> None:
    exit_on_sigterm()
    args = argument_parser(__doc__, builds=10_000, requests=50).parse_args()
    with bench_server(args.backend, web=True) as (url, k):
        with k.client() as api:
            slug = create_pipeline(api, "Busy", STEPS)
        seed_builds(url, slug, args.builds, with_jobs=1_000, jobs_per_build=3)
        progress(f"{args.builds} builds seeded")
        base = f"/{ORG}/{slug}"
        deep = min(100, args.builds // ROWS)
        results: dict[str, Any] = {}
        client = web_sign_in(k.url)
        try:
            for name, path, headers in (
                ("page", base, {}),
                ("live_block", base, {"HX-Request": "true", "HX-Target": "builds"}),
                ("deep_page", f"{base}?page={deep}", {}),
                ("filtered", f"{base}?branch=main&state=passed", {}),
            ):
                measure = partial(_measure, client, path, headers, args.requests)
                results[name] = measured(k, name, args.requests, measure)
        finally:
            client.close()
        emit(
            {
                "benchmark": "web-pipeline-page",
                "backend": args.backend,
                "database": database_info(url),
                "builds": args.builds,
                "rows_per_page": ROWS,
                "deep_page_number": deep,
                "requests": args.requests,
                **results,
            }
        )


if __name__ == "__main__":
    main()
