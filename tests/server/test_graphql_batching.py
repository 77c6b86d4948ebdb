"""No N+1 queries: loaders batch each level of a query, so the seed's "organization → pipelines
→ latest builds → jobs" runs as many SQL statements over 20 pipelines x 5 builds x 50 jobs as
over one of each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.graphql import Org, execute
from tests.support.live_server import LiveServer

MakeServer = Callable[..., LiveServer]

EVERYTHING = """
query Everything($org: ID!) {
  organization(slug: $org) {
    pipelines(first: 20) {
      count
      edges { node {
        name slug url createdBy { email }
        builds(first: 5) {
          count
          edges { node {
            number state url
            createdBy { ... on User { email } }
            pipeline { slug }
            jobs(first: 50) {
              count
              edges { node {
                ... on JobTypeCommand { uuid state exitStatus url env agent { name } }
              } }
            }
          } }
        }
      } }
    }
  }
}
"""


def steps(count: int) -> str:
    return "steps:\n" + "".join(f"  - command: echo {n}\n" for n in range(count))


def populate(org: Org, *, pipelines: int, builds: int, jobs: int) -> None:
    configuration = steps(jobs)
    org.rest.patch(
        f"/v2/organizations/{org.slug}/pipelines/p", json={"configuration": configuration}
    )
    for n in range(1, pipelines):
        org.pipeline(f"p{n}", configuration)
    for slug in ["p", *(f"p{n}" for n in range(1, pipelines))]:
        for _ in range(builds):
            org.build(slug)
    org.run_first_job("0")  # one job with an agent, as the query asks for agents


@contextmanager
def counted_statements(server: LiveServer) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Writes beside the query are not the query's (a read-only one, so no write transaction
        # of its own either): the server's once-a-second liveness heartbeat, and the token's
        # "last used", written after a request at most once a minute (the large organization's
        # setup can outlast that minute), and on SQLite the `PRAGMA query_only=OFF` with which
        # such a write's connection leaves read-only mode.
        if "serving_processes" in statement or statement.startswith(
            ("BEGIN IMMEDIATE", "UPDATE api_tokens", "PRAGMA query_only")
        ):
            return
        statements.append(statement)

    engine = server.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.both_graphql_executions
def test_statements_do_not_grow_with_pipelines_builds_and_jobs(make_server: MakeServer) -> None:
    server = make_server(
        run_workers=False, rate_limit_org_per_minute=0, graphql_complexity_per_window=0
    )
    small, large = Org.create(server, "small"), Org.create(server, "large")
    populate(small, pipelines=1, builds=1, jobs=1)
    populate(large, pipelines=20, builds=5, jobs=50)

    counts = {}
    for org in (small, large):
        execute(org.gql, "{ viewer { user { name } } }")  # the client fetches the schema first
        with counted_statements(server) as statements:
            result = execute(org.gql, EVERYTHING, org=org.slug)
        counts[org.slug] = len(statements)
        pipelines = result["organization"]["pipelines"]
        builds = [b for p in pipelines["edges"] for b in p["node"]["builds"]["edges"]]
        jobs = [j for b in builds for j in b["node"]["jobs"]["edges"]]
        assert (len(pipelines["edges"]), len(builds), len(jobs)) == (
            (1, 1, 1) if org is small else (20, 100, 5000)
        )
        assert all(job["node"]["env"] for job in jobs)

    assert counts["large"] == counts["small"]
    assert counts["large"] <= 15  # auth, memberships, then a page and a count per level, …
