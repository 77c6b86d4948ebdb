"""GraphQL benchmark: an organization's 20 pipelines x 5 latest builds x their jobs, in one
query through /v1; req/s and latency at 1 and 8 clients, and SQL statements per request.

    python bench/graphql_query.py [--backend sqlite|postgresql] [--jobs-per-build 10]
        [--execution fast|stock]

Each pipeline has 20 builds (inserted with SQL, as bench/rest.py does), the newest five with
`--jobs-per-build` jobs each. The load goes to `kiteline server` as its own process, with the
complexity budget off. Statements are counted by a SQLAlchemy listener on a second server
running in this process on the same database, once with one pipeline of one build of one job
and once with everything: the two counts should be equal, for the first answer (run) and
for the second (kept, decision 0042). The load repeats one query, as a dashboard refreshing
does: its answers come from what was kept while nothing changes. `--execution stock` runs both
servers with `KITELINE_GRAPHQL_EXECUTION=stock` (what the fast path buys). Prints one JSON line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    WARM_UP_REQUESTS,
    Kiteline,
    argument_parser,
    bench_server,
    cpu_seconds,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    in_process_server,
    load,
    progress,
    seed_builds,
)

from kiteline.settings import Settings

PIPELINES = 20
BUILDS_PER_PIPELINE = 20
LATEST_BUILDS = 5
NO_BUDGET = {
    "graphql_complexity_per_window": 0,  # 0 turns the window budget off
    "graphql_max_query_complexity": 100_000_000,
}

QUERY = """
query Dashboard($org: ID!) {
  organization(slug: $org) {
    pipelines(first: 20) {
      edges { node {
        name slug
        builds(first: 5) {
          edges { node {
            number state branch message createdAt
            jobs(first: 50) {
              edges { node {
                ... on JobTypeCommand {
                  uuid label command state exitStatus passed startedAt finishedAt
                  agent { name }
                }
              } }
            }
          } }
        }
      } }
    }
  }
}
"""


def _counts(body: dict[str, Any]) -> tuple[int, int, int]:
    pipelines = body["data"]["organization"]["pipelines"]["edges"]
    builds = [b for p in pipelines for b in p["node"]["builds"]["edges"]]
    jobs = [j for b in builds for j in b["node"]["jobs"]["edges"]]
    return len(pipelines), len(builds), len(jobs)


def _post(client: httpx.Client, url: str, query: str = QUERY) -> dict[str, Any]:
    response = client.post(url, json={"query": query, "variables": {"org": ORG}})
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or "errors" in body:
        raise SystemExit(f"GraphQL answered {response.status_code}: {response.text[:500]}")
    return body


def _counted(statement: str) -> bool:
    # As tests/server/test_graphql_batching.py: writes beside the query (the liveness
    # heartbeat, the token's "last used") and SQLite connections switching `query_only` are
    # not the query's statements.
    return "serving_processes" not in statement and not statement.startswith(
        ("BEGIN IMMEDIATE", "UPDATE api_tokens", "PRAGMA query_only")
    )


@contextmanager
def _counting_server(settings: Settings) -> Iterator[tuple[str, list[str]]]:
    """A server in a thread of this process; yields its URL and the list statements go to."""
    with in_process_server(settings.model_copy(update=NO_BUDGET), counted=_counted) as (
        url,
        statements,
        _,
    ):
        yield url, statements


def _statements_per_request(
    k: Kiteline, url: str, statements: list[str], label: str
) -> dict[str, Any]:
    with httpx.Client(headers={"Authorization": f"Bearer {k.api_token}"}, timeout=60) as client:
        # Warm up (first-request work is not per request) with another document, whose
        # answer is kept under another key.
        _post(client, f"{url}/v1", f"{QUERY}# warm-up {label}\n")
        query = f"{QUERY}# {label}\n"  # a document of its own: nothing kept for it yet
        statements.clear()
        body = _post(client, f"{url}/v1", query)  # run, and kept (graphql/answers.py)
        run = len(statements)
        statements.clear()
        kept = _post(client, f"{url}/v1", query)  # answered from what was kept
        if kept != body:
            raise SystemExit("the kept answer differs from the first")
        pipelines, builds, jobs = _counts(body)
    return {
        "pipelines": pipelines,
        "builds": builds,
        "jobs": jobs,
        "statements": run,
        "statements_kept": len(statements),
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs-per-build", type=int, default=10)
    parser.add_argument("--execution", default="fast", choices=["fast", "stock"])
    parser.add_argument("--requests", type=int, default=400, help="at most, per measurement")
    parser.add_argument(
        "--duration", type=float, default=20, help="at most this many seconds per measurement"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    server_env = {f"KITELINE_{key.upper()}": str(value) for key, value in NO_BUDGET.items()}
    server_env["KITELINE_GRAPHQL_EXECUTION"] = args.execution
    with (
        bench_server(args.backend, **server_env) as (url, k),
        k.client() as client,
        _counting_server(k.settings.model_copy(update={"graphql_execution": args.execution})) as (
            counting_url,
            statements,
        ),
    ):
        configuration = "steps:\n  - command: 'true'\n"
        slugs = [create_pipeline(client, "Pipeline 00", configuration)]
        seed_builds(url, slugs[0], 1, with_jobs=1, jobs_per_build=1)
        small = _statements_per_request(k, counting_url, statements, "small")

        progress(f"graphql: seeding {PIPELINES} pipelines x {BUILDS_PER_PIPELINE} builds")
        slugs += [
            create_pipeline(client, f"Pipeline {n:02}", configuration) for n in range(1, PIPELINES)
        ]
        for n, slug in enumerate(slugs):
            seed_builds(
                url,
                slug,
                BUILDS_PER_PIPELINE,
                already=1 if n == 0 else 0,
                with_jobs=LATEST_BUILDS,
                jobs_per_build=args.jobs_per_build,
            )
        large = _statements_per_request(k, counting_url, statements, "large")
        builds = PIPELINES * LATEST_BUILDS
        expected = (PIPELINES, builds, builds * args.jobs_per_build)
        if (large["pipelines"], large["builds"], large["jobs"]) != expected:
            raise SystemExit(f"the query returned {large}, expected {expected}")

        progress("graphql: loading")
        size = len(client.post("/v1", json={"query": QUERY, "variables": {"org": ORG}}).content)

        def send(http: httpx.AsyncClient) -> Any:
            return http.post("/v1", json={"query": QUERY, "variables": {"org": ORG}})

        def check(response: httpx.Response) -> bool:
            return response.status_code == 200 and b'"errors"' not in response.content

        results = {}
        for clients in (1, 8):
            progress(f"graphql: {clients} client(s)")
            cpu_before = cpu_seconds(k.server.pid)
            result = load(
                k.url,
                k.api_token,
                send=send,
                check=check,
                concurrency=clients,
                requests=args.requests,
                duration=args.duration,
            )
            # The server's own CPU per answer (the load client shares the machine's cores).
            served = result["requests"] + WARM_UP_REQUESTS
            cpu = cpu_seconds(k.server.pid) - cpu_before
            result["server_cpu_ms_per_request"] = round(cpu * 1000 / served, 1)
            results[f"clients_{clients}"] = result
            progress(f"graphql: {results[f'clients_{clients}']}")
        info = database_info(url)
    emit(
        {
            "benchmark": "graphql",
            "backend": args.backend,
            "execution": args.execution,
            **info,
            "shape": f"{PIPELINES} pipelines x {LATEST_BUILDS} builds x {args.jobs_per_build} jobs",
            "response_bytes": size,
            "statements_per_request": {"small": small, "large": large},
            "statements_independent_of_counts": small["statements"] == large["statements"]
            and small["statements_kept"] == large["statements_kept"],
            **results,
        }
    )


if __name__ == "__main__":
    main()
