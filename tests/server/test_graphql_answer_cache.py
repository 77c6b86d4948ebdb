"""Kept GraphQL answers (graphql/answers.py) are never stale: a dashboard query is answered
once (and kept), then each thing it depends on is changed through the real API (REST,
GraphQL, the agent API) or the database, and the next answer must show the change. Who asks,
with what token, variables and address, is part of the key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents.models import Agent
from kiteline.server.graphql.answers import AnswerCache, KeptAnswer
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.users.models import User
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

STEPS = "steps:\n  - command: echo one\n  - command: echo two\n"

DASHBOARD = """
query Dashboard($org: ID!) {
  organization(slug: $org) {
    name
    pipelines(first: 2) {
      count
      edges { node {
        name slug url
        repository { provider { webhookUrl } }
        builds(first: 2) {
          count
          pageInfo { hasNextPage }
          edges { node {
            number state message
            jobs(first: 10) {
              count
              edges { node {
                ... on JobTypeCommand {
                  label state exitStatus agent { name connectionState }
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


def _pipeline(client: httpx.Client, name: str, org: str = "acme") -> None:
    created = client.post(
        f"/v2/organizations/{org}/pipelines",
        json={"name": name, "configuration": STEPS, "repository": "https://github.com/a/b.git"},
    )
    assert created.status_code == 201, created.text


def _build(client: httpx.Client, pipeline: str = "p", org: str = "acme") -> dict[str, Any]:
    built = client.post(
        f"/v2/organizations/{org}/pipelines/{pipeline}/builds",
        json={"commit": "HEAD", "branch": "main", "message": "m"},
    )
    assert built.status_code == 201, built.text
    body: dict[str, Any] = built.json()
    return body


def _setup(server: LiveServer) -> tuple[httpx.Client, Identity]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    _pipeline(client, "p")
    _build(client)
    return client, identity


def _cache(server: LiveServer) -> AnswerCache:
    cache: AnswerCache = server.app.state.graphql_answers
    return cache


def _post(
    client: httpx.Client, query: str = DASHBOARD, org: str = "acme", **headers: str
) -> httpx.Response:
    response = client.post("/v1", json={"query": query, "variables": {"org": org}}, headers=headers)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    return response


def _dashboard(client: httpx.Client, org: str = "acme") -> dict[str, Any]:
    data: dict[str, Any] = _post(client, org=org).json()["data"]["organization"]
    return data


def _kept(server: LiveServer, client: httpx.Client) -> dict[str, Any]:
    """The dashboard, answered twice: the second time from what was kept."""
    cache = _cache(server)
    first = _post(client)
    hits = cache.hits
    second = _post(client)
    assert cache.hits == hits + 1
    assert second.content == first.content
    data: dict[str, Any] = second.json()["data"]["organization"]
    return data


def _nodes(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


def _db(server: LiveServer, statement: Any) -> None:
    async def run(session: AsyncSession) -> None:
        await session.execute(statement)

    server.admin(run)


@pytest.mark.both_graphql_executions
def test_a_kept_answer_is_the_same_bytes_headers_and_stats(server: LiveServer) -> None:
    client, _ = _setup(server)
    first = _post(client)
    cache = _cache(server)
    assert (cache.fills, cache.hits) == (1, 0)
    second = _post(client)
    assert (cache.fills, cache.hits) == (1, 1)
    assert second.content == first.content
    for name in ("RateLimit-Complexity-Requested", "RateLimit-Complexity-Actual"):
        assert second.headers[name] == first.headers[name]
    with_stats = _post(client, **{"Buildkite-Include-Query-Stats": "true"})
    assert cache.hits == 2
    stats = with_stats.json()["stats"]
    assert stats["actualComplexity"] == int(first.headers["RateLimit-Complexity-Actual"])
    assert with_stats.json()["data"] == first.json()["data"]


@pytest.mark.both_graphql_executions
def test_jobs_and_agents_changing_through_the_agent_api_show(server: LiveServer) -> None:
    client, identity = _setup(server)
    jobs = _nodes(_nodes(_nodes(_kept(server, client)["pipelines"])[0]["builds"])[0]["jobs"])
    assert [(j["state"], j["agent"]) for j in jobs] == [("SCHEDULED", None)] * 2
    agent = ScriptedAgent.register(server.url, identity.agent_token, name="runner")
    job = agent.take_job()

    def first_jobs() -> list[dict[str, Any]]:
        build = _nodes(_nodes(_kept(server, client)["pipelines"])[0]["builds"])[0]
        return _nodes(build["jobs"])

    running = first_jobs()[0]
    assert (running["state"], running["agent"]) == (
        "RUNNING",
        {"name": "runner", "connectionState": "connected"},
    )
    assert agent.finish(job, "3").status_code == 200
    assert [(j["state"], j["exitStatus"]) for j in first_jobs()] == [
        ("FINISHED", "3"),
        ("SCHEDULED", None),
    ]
    _db(server, update(Agent).where(Agent.id == uuid.UUID(agent.id)).values(name="renamed"))
    assert first_jobs()[0]["agent"]["name"] == "renamed"
    agent.call("POST", "/disconnect").raise_for_status()
    assert first_jobs()[0]["agent"] == {"name": "renamed", "connectionState": "disconnected"}


@pytest.mark.both_graphql_executions
def test_builds_and_pipelines_changing_through_rest_and_graphql_show(server: LiveServer) -> None:
    client, _ = _setup(server)
    pipelines = _kept(server, client)["pipelines"]
    assert pipelines["count"] == 1
    builds = _nodes(pipelines)[0]["builds"]
    assert (builds["count"], builds["pageInfo"]["hasNextPage"]) == (1, False)
    _build(client)
    _build(client)
    builds = _nodes(_kept(server, client)["pipelines"])[0]["builds"]
    assert [b["number"] for b in _nodes(builds)] == [3, 2]
    assert (builds["count"], builds["pageInfo"]["hasNextPage"]) == (3, True)

    build_id = client.get("/v2/organizations/acme/pipelines/p/builds/3").json()["graphql_id"]
    canceled = client.post(
        "/v1",
        json={
            "query": "mutation($id: ID!) { buildCancel(input: {id: $id}) { build { state } } }",
            "variables": {"id": build_id},
        },
    )
    assert canceled.json()["data"]["buildCancel"]["build"]["state"] == "CANCELED", canceled.text
    newest = _nodes(_nodes(_kept(server, client)["pipelines"])[0]["builds"])[0]
    assert (newest["number"], newest["state"]) == (3, "CANCELED")
    assert {j["state"] for j in _nodes(newest["jobs"])} == {"CANCELED"}

    renamed = client.patch("/v2/organizations/acme/pipelines/p", json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    assert [p["name"] for p in _nodes(_kept(server, client)["pipelines"])] == ["Renamed"]

    _pipeline(client, "a-first")  # sorts before "Renamed" by name
    pipelines = _kept(server, client)["pipelines"]
    assert pipelines["count"] == 2
    assert [(p["name"], p["builds"]["count"]) for p in _nodes(pipelines)] == [
        ("a-first", 0),
        ("Renamed", 3),
    ]
    deleted = client.delete("/v2/organizations/acme/pipelines/a-first")
    assert deleted.status_code == 204, deleted.text
    assert [p["name"] for p in _nodes(_kept(server, client)["pipelines"])] == ["Renamed"]


@pytest.mark.both_graphql_executions
def test_a_pipeline_looked_up_by_slug_changing_or_appearing_shows(server: LiveServer) -> None:
    client, _ = _setup(server)
    by_slug = """query($slug: ID!) { pipeline(slug: $slug) { name
        builds(first: 5) { edges { node { number state } } } } }"""

    def pipeline(slug: str) -> Any:
        cache = _cache(server)
        first = client.post("/v1", json={"query": by_slug, "variables": {"slug": slug}})
        hits = cache.hits
        second = client.post("/v1", json={"query": by_slug, "variables": {"slug": slug}})
        assert cache.hits == hits + 1
        assert second.content == first.content
        return second.json()["data"]["pipeline"]

    assert pipeline("acme/p")["name"] == "p"
    assert pipeline("acme/later") is None  # not found: kept, and must stay not found
    renamed = client.patch("/v2/organizations/acme/pipelines/p", json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    assert pipeline("acme/p")["name"] == "Renamed"
    _build(client)
    assert [b["node"]["number"] for b in pipeline("acme/p")["builds"]["edges"]] == [2, 1]
    _pipeline(client, "later")
    assert pipeline("acme/later") == {"name": "later", "builds": {"edges": []}}
    deleted = client.delete("/v2/organizations/acme/pipelines/later")
    assert deleted.status_code == 204, deleted.text
    assert pipeline("acme/later") is None


def test_a_renamed_creator_shows_in_a_kept_answer(server: LiveServer) -> None:
    client, identity = _setup(server)
    creators = """{ pipeline(slug: "acme/p") { builds(first: 1) { edges { node {
        createdBy { ... on User { name } } } } } } }"""

    def creator() -> Any:
        cache = _cache(server)
        first = _post(client, creators)
        hits = cache.hits
        second = _post(client, creators)
        assert (cache.hits, second.content) == (hits + 1, first.content)
        return second.json()["data"]["pipeline"]["builds"]["edges"][0]["node"]["createdBy"]

    assert creator() == {"name": "Test User"}
    _db(server, update(User).where(User.email == identity.email).values(name="New Name"))
    assert creator() == {"name": "New Name"}


def test_who_asks_with_what_token_variables_and_address_is_part_of_the_key(
    server: LiveServer,
) -> None:
    client, _ = _setup(server)
    other = server.identity("other")
    other_client = server.client(other.api_token)
    _pipeline(other_client, "theirs", org="other")
    shown = _kept(server, client)
    assert [p["name"] for p in _nodes(shown["pipelines"])] == ["p"]
    assert _nodes(shown["pipelines"])[0]["repository"]["provider"]["webhookUrl"] is not None
    # Another organization's slug: not one of the caller's.
    assert client.post("/v1", json={"query": DASHBOARD, "variables": {"org": "other"}}).json()[
        "data"
    ] == {"organization": None}
    # Another caller, another organization, the same document and variables.
    theirs = _dashboard(other_client, org="other")
    assert [p["name"] for p in _nodes(theirs["pipelines"])] == ["theirs"]
    assert _post(other_client).json()["data"] == {"organization": None}
    # A member of the same organization whose token may not edit pipelines: no webhook URL.
    reader = server.identity("acme", scopes=["read_builds", "read_pipelines", "graphql"])
    read = _dashboard(server.client(reader.api_token))
    assert _nodes(read["pipelines"])[0]["repository"]["provider"]["webhookUrl"] is None
    assert _nodes(_kept(server, client)["pipelines"])[0]["repository"]["provider"]["webhookUrl"]
    # The organization, read in every request (renamed where no API renames it).
    _db(server, update(Organization).where(Organization.slug == "acme").values(name="Acme 2"))
    assert _kept(server, client)["name"] == "Acme 2"
    # The address the server is asked at is in its URLs.
    url = _nodes(_kept(server, client)["pipelines"])[0]["url"]
    elsewhere = _post(client, Host="kiteline.example.com").json()["data"]["organization"]
    assert _nodes(elsewhere["pipelines"])[0]["url"] == url.replace(
        server.url.removeprefix("http://"), "kiteline.example.com"
    )
    assert _nodes(_kept(server, client)["pipelines"])[0]["url"] == url


def test_a_change_through_one_replica_shows_in_the_others_kept_answer(
    make_server: Callable[..., LiveServer],
) -> None:
    first = make_server()
    second = make_server()  # same database; its own cache, as another process has
    client, identity = _setup(first)
    other = second.client(identity.api_token)
    before = _kept(second, other)
    assert [b["state"] for b in _nodes(_nodes(before["pipelines"])[0]["builds"])] == ["SCHEDULED"]
    ScriptedAgent.register(first.url, identity.agent_token).pass_a_job()
    _build(client)
    after = _kept(second, other)
    builds = _nodes(_nodes(after["pipelines"])[0]["builds"])
    assert [(b["number"], b["state"]) for b in builds] == [(2, "SCHEDULED"), (1, "RUNNING")]
    assert [j["state"] for j in _nodes(builds[1]["jobs"])] == ["FINISHED", "SCHEDULED"]


def test_answers_from_reads_that_cannot_be_signed_or_with_errors_are_not_kept(
    server: LiveServer,
) -> None:
    client, _ = _setup(server)
    cache = _cache(server)
    meta_data = """query { pipeline(slug: "acme/p") { builds(first: 1) { edges { node {
        metaData { edges { node { key value } } } } } } } }"""
    for _ in range(2):
        _post(client, meta_data)
    assert (cache.fills, cache.hits) == (0, 0)
    failing = 'query { pipeline(slug: "acme/p") { builds(first: 1, after: "bad") { count } } }'
    for _ in range(2):
        response = client.post("/v1", json={"query": failing})
        assert "errors" in response.json(), response.text
    assert (cache.fills, cache.hits) == (0, 0)
    viewer = "query { viewer { user { name } } }"
    for _ in range(2):
        assert _post(client, viewer).json()["data"]["viewer"]["user"]["name"] == "Test User"
    assert (cache.fills, cache.hits) == (1, 1)


def test_a_kept_answer_still_spends_the_organizations_budget(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(graphql_complexity_per_window=10, graphql_window_seconds=600)
    client, _ = _setup(server)
    first = _post(client)
    assert int(first.headers["RateLimit-Complexity-Actual"]) > 10
    refused = client.post("/v1", json={"query": DASHBOARD, "variables": {"org": "acme"}})
    assert refused.status_code == 429, refused.text
    assert "exceeded the limit of 10 complexity points" in refused.json()["errors"][0]["message"]


def test_pipeline_and_agent_revisions_are_bumped_by_orm_flushes_and_core_updates(
    server: LiveServer,
) -> None:
    _, identity = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token)

    async def revisions(session: AsyncSession) -> list[int]:
        pipeline = (await session.scalars(select(Pipeline))).one()
        row = await session.get(Agent, uuid.UUID(agent.id))
        assert row is not None
        read = [
            await session.scalar(select(Pipeline.revision).where(Pipeline.id == pipeline.id)),
            await session.scalar(select(Agent.revision).where(Agent.id == row.id)),
        ]
        pipeline.description = "changed"
        row.hostname = "changed"
        await session.flush()
        await session.execute(
            update(Pipeline).where(Pipeline.id == pipeline.id).values(description="again")
        )
        await session.execute(update(Agent).where(Agent.id == row.id).values(hostname="again"))
        return [
            await session.scalar(select(Pipeline.revision).where(Pipeline.id == pipeline.id))
            - read[0],
            await session.scalar(select(Agent.revision).where(Agent.id == row.id)) - read[1],
        ]

    assert server.admin(revisions) == [2, 2]


def test_a_kept_answer_costs_one_statement_beside_the_caller_whatever_it_shows(
    make_server: Callable[..., LiveServer],
) -> None:
    """Signed by its pages, counts and rows in one statement, small or large."""
    server = make_server(run_workers=False)  # no sweeps' statements beside the requests'
    client, _ = _setup(server)
    statements: dict[str, list[str]] = {}
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # As tests/server/test_graphql_batching.py: writes beside the query are not its own.
        if "serving_processes" in statement or statement.startswith(
            ("BEGIN IMMEDIATE", "UPDATE api_tokens", "PRAGMA query_only")
        ):
            return
        seen.append(statement)

    for shape in ("small", "large"):
        if shape == "large":
            _pipeline(client, "q")
            for pipeline in ("p", "q", "q"):
                _build(client, pipeline)
        _post(client)  # kept
        seen.clear()
        engine = server.app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            hits = _cache(server).hits
            _post(client)
            assert _cache(server).hits == hits + 1
        finally:
            event.remove(engine, "before_cursor_execute", count)
        statements[shape] = [s for s in list(seen) if s.lstrip().upper().startswith("SELECT")]
    assert len(statements["large"]) == len(statements["small"])
    signatures = [s for s in statements["large"] if "UNION ALL" in s]
    assert len(signatures) == 1, statements["large"]


def _answer(size: int) -> KeptAnswer:
    return KeptAnswer((), b"x" * size, 1, 1, ())


def test_the_cache_keeps_to_its_bounds_and_forgets_the_least_recently_used() -> None:
    cache = AnswerCache(max_answers=3, max_bytes=9_000, max_answer_bytes=6_000)
    for key in "abc":
        cache.put(key, _answer(100))
    assert cache.get("a") is not None  # now the most recently used
    cache.put("d", _answer(100))
    assert len(cache) == 3
    assert cache.get("b") is None
    cache.put("e", _answer(5_000))
    cache.put("f", _answer(5_000))
    assert cache.get("e") is None  # pushed out by bytes, not by count
    cache.put("huge", _answer(7_000))  # over the largest answer kept
    assert cache.get("huge") is None
