"""GraphQL's limits: the per-query complexity maximum, each organization's window budget and
its headers, query stats, depth and page size."""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import pytest

from tests.support.graphql import Org, post
from tests.support.live_server import LiveServer

REDIS_URL = os.environ.get("KITELINE_TEST_REDIS_URL")
MakeServer = Callable[..., LiveServer]

#: Costs 1 (organization) + 1 (pipelines) + 1 (edges) + 5 x 1 (node) = 8 requested; over
#: one pipeline it actually returns 1 + 1 + 1 + 1 = 4.
FIVE_PIPELINES = (
    '{ organization(slug: "acme") { pipelines(first: 5) { edges { node { slug } } } } }'
)

#: Buildkite's own example: 3 + 500 x (1 + 1 + 1 + 500), a missing `first` counted as 500.
EVERY_PIPELINES_BUILDS = """
{ organization(slug: "acme") { pipelines(first: 500) {
    edges { node { builds { edges { node { number } } } } } } } }
"""


def limit_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith("ratelimit-")
    }


@pytest.mark.both_graphql_executions
def test_a_query_over_the_maximum_complexity_is_refused_before_it_runs(
    server: LiveServer,
) -> None:
    org = Org.create(server)
    response = post(org.rest, EVERY_PIPELINES_BUILDS)
    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {"message": "Query has complexity of 251503, which exceeds max complexity of 50000"}
        ]
    }
    assert response.headers["RateLimit-Complexity-Requested"] == "251503"
    assert response.headers["RateLimit-Complexity-Actual"] == "0"
    assert response.headers["RateLimit-Remaining"] == "20000"


def test_the_maximum_is_configurable(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_max_query_complexity=7))
    refused = post(org.rest, FIVE_PIPELINES)
    assert refused.json()["errors"][0]["message"] == (
        "Query has complexity of 8, which exceeds max complexity of 7"
    )
    small = '{ organization(slug: "acme") { pipelines(first: 4) { edges { node { slug } } } } }'
    assert post(org.rest, small).json()["data"]["organization"]["pipelines"]["edges"]


@pytest.mark.both_graphql_executions
def test_every_answer_reports_the_window_budget_counting_down(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_complexity_per_window=30))
    responses = [post(org.rest, FIVE_PIPELINES) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    for response, remaining in zip(responses, ("26", "22", "18"), strict=True):
        headers = limit_headers(response)
        assert 0 < int(headers.pop("ratelimit-reset")) <= 120  # the seed's 2-minute window
        assert headers == {
            "ratelimit-remaining": remaining,
            "ratelimit-limit": "30",
            "ratelimit-complexity-requested": "8",
            "ratelimit-complexity-actual": "4",
        }


def test_an_organization_over_its_budget_gets_429_until_the_window_ends(
    make_server: MakeServer,
) -> None:
    org = Org.create(make_server(graphql_complexity_per_window=30))
    answered = [post(org.rest, FIVE_PIPELINES) for _ in range(8)]
    assert [r.status_code for r in answered] == [200] * 8
    assert answered[-1].headers["RateLimit-Remaining"] == "0"  # 8 x 4 = 32: the last one crossed

    refused = post(org.rest, FIVE_PIPELINES)

    assert refused.status_code == 429
    reset = int(refused.headers["RateLimit-Reset"])
    assert 0 < reset <= 120
    assert refused.json() == {
        "errors": [
            {
                "message": "Your organization has exceeded the limit of 30 complexity points. "
                f"Please try again in {reset} seconds."
            }
        ]
    }
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Limit"] == "30"


@pytest.mark.both_graphql_executions
def test_a_refused_mutation_changes_nothing(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_complexity_per_window=4))
    assert post(org.rest, FIVE_PIPELINES).status_code == 200
    pipeline_id = org.get("pipelines/p")["graphql_id"]
    mutation = "mutation C($id: ID!) { buildCreate(input: {pipelineID: $id}) { build { number } } }"

    refused = post(org.rest, mutation, {"id": pipeline_id})

    assert refused.status_code == 429
    assert org.get("pipelines/p/builds") == []


def test_organizations_have_their_own_budgets(make_server: MakeServer) -> None:
    server = make_server(graphql_complexity_per_window=4)
    acme, other = Org.create(server), Org.create(server, "other")
    assert post(acme.rest, FIVE_PIPELINES).status_code == 200
    assert post(acme.rest, FIVE_PIPELINES).status_code == 429
    other_query = FIVE_PIPELINES.replace("acme", "other")
    response = post(other.rest, other_query)
    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == "0"


def test_the_window_length_is_configurable(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_window_seconds=7))
    response = post(org.rest, FIVE_PIPELINES)
    assert 0 < int(response.headers["RateLimit-Reset"]) <= 7


def test_a_budget_of_zero_turns_the_window_off(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_complexity_per_window=0))
    response = post(org.rest, FIVE_PIPELINES)
    assert response.status_code == 200
    assert limit_headers(response) == {
        "ratelimit-complexity-requested": "8",
        "ratelimit-complexity-actual": "4",
    }


def test_query_stats_on_request(server: LiveServer) -> None:
    org = Org.create(server)
    stats = post(org.rest, FIVE_PIPELINES, headers={"Buildkite-Include-Query-Stats": "true"})
    assert stats.json()["stats"] == {"requestedComplexity": 8, "actualComplexity": 4}
    assert "stats" not in post(org.rest, FIVE_PIPELINES).json()


@pytest.mark.both_graphql_executions
def test_a_query_deeper_than_fifteen_is_refused(server: LiveServer) -> None:
    org = Org.create(server)
    fifteen = """
    { build(slug: "acme/p/1") { pipeline { builds(first: 1) { edges { node {
      pipeline { builds(first: 1) { edges { node {
        jobs(first: 1) { edges { node { ... on JobTypeCommand { build { pipeline { slug } } } } } }
      } } } } } } } } } }
    """
    sixteen = fifteen.replace("pipeline { slug }", "pipeline { organization { slug } }")
    assert post(org.rest, fifteen).json() == {"data": {"build": None}}
    response = post(org.rest, sixteen)
    assert response.status_code == 200
    assert response.json() == {
        "errors": [{"message": "Query has depth of 16, which exceeds max depth of 15"}]
    }


@pytest.mark.both_graphql_executions
def test_pages_are_capped_at_500(server: LiveServer) -> None:
    org = Org.create(server)
    query = '{ organization(slug: "acme") { pipelines(first: 1000) { edges { node { slug } } } } }'
    response = post(org.rest, query)
    assert response.headers["RateLimit-Complexity-Requested"] == "503"
    assert len(response.json()["data"]["organization"]["pipelines"]["edges"]) == 1


@pytest.mark.skipif(not REDIS_URL, reason="KITELINE_TEST_REDIS_URL is not set")
def test_two_servers_share_one_budget_through_redis(make_server: MakeServer) -> None:
    first = make_server(redis_url=REDIS_URL, graphql_complexity_per_window=8)
    second = make_server(redis_url=REDIS_URL, graphql_complexity_per_window=8)
    org = Org.create(first)  # the budget's key is the organization's id: no clash across runs
    token = org.identity.api_token
    clients = [first.client(token), second.client(token)] * 2

    responses = [post(client, FIVE_PIPELINES) for client in clients]

    assert [r.status_code for r in responses] == [200, 200, 429, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["4", "0", "0", "0"]
