"""Web UI benchmark: the organization's pipelines page, each pipeline with its last builds.

    python bench/web_pipelines_list.py [--backend sqlite|postgresql] [--pipelines 50]
        [--builds 10] [--requests 50]

`--pipelines` pipelines get `--builds` finished builds each straight with SQL. A signed-in
client fetches `/{org}` one request at a time: the page, the block a live update fetches
(`HX-Target: pipelines`) and a name-filtered page (`?filter=pipeline`, all of them). Each
answer must be a 200 with every pipeline's row and `--builds` state bars for each (at most 10).
Prints one JSON line with the latencies and the server's CPU time per request.
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

STEPS = "steps:\n  - command: make test\n"
SHOWN_BUILDS = 10  # the page's bars per pipeline


def _measure(
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    requests: int,
    expected: tuple[int, int],
) -> tuple[list[float], dict[str, int]]:
    def fetch() -> httpx.Response:
        response = client.get(path, headers=headers)
        shown = (
            response.text.count('<li class="row pipeline"'),
            response.text.count('<a class="bar bar-'),
        )
        if response.status_code != 200 or shown != expected:
            raise SystemExit(f"{path} is wrong: {response.status_code}, (rows, bars) {shown}")
        return response

    latencies, last = timed(fetch, requests)
    return latencies, {"bytes": len(last.content)}


def main() -> None:
    exit_on_sigterm()
    args = argument_parser(__doc__, pipelines=50, builds=10, requests=50).parse_args()
    with bench_server(args.backend, web=True) as (url, k):
        with k.client() as api:
            slugs = [create_pipeline(api, f"Pipeline {n:03}", STEPS) for n in range(args.pipelines)]
        for slug in slugs:
            seed_builds(url, slug, args.builds, with_jobs=args.builds, jobs_per_build=1)
        progress(f"{args.pipelines} pipelines x {args.builds} builds seeded")
        expected = (args.pipelines, args.pipelines * min(args.builds, SHOWN_BUILDS))
        base = f"/{ORG}"
        results: dict[str, Any] = {}
        client = web_sign_in(k.url)
        try:
            for name, path, headers in (
                ("page", base, {}),
                ("live_block", base, {"HX-Request": "true", "HX-Target": "pipelines"}),
                ("filtered", f"{base}?filter=pipeline", {}),
            ):
                measure = partial(_measure, client, path, headers, args.requests, expected)
                results[name] = measured(k, name, args.requests, measure)
        finally:
            client.close()
        emit(
            {
                "benchmark": "web-pipelines-list",
                "backend": args.backend,
                "database": database_info(url),
                "pipelines": args.pipelines,
                "builds_per_pipeline": args.builds,
                "requests": args.requests,
                **results,
            }
        )


if __name__ == "__main__":
    main()
