"""`KITELINE_GRAPHQL_EXECUTION=fast` and `=stock` give the same answers: two servers on one
database, one in each mode, asked the reference's example queries and a query across every
type (fragments, unions, interfaces, `__typename`, cursors, errors), byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.server.test_graphql import GET_BUILD, LIST_PIPELINES, SEARCH_BUILDS
from tests.support.graphql import Org, post
from tests.support.live_server import LiveServer

MakeServer = Callable[..., LiveServer]
PUBLIC_URL = "http://kiteline.test"

EVERYTHING = """
query Everything($org: ID!, $pipeline: ID!) {
  viewer { id user { uuid name email avatar { url } bot } organizations(first: 5) { count } }
  organization(slug: $org) {
    id uuid slug name public
    agents(first: 5) { count edges { cursor node { name connectionState isRunningJob
      job { __typename ... on JobTypeCommand { uuid state } } } } }
    pipelines(first: 5, order: NAME) {
      count
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { ...PipelineFields } }
    }
  }
  pipeline(slug: $pipeline) {
    ...PipelineFields
    builds(first: 3) {
      count
      pageInfo { hasNextPage endCursor }
      edges { node {
        __typename id uuid number state blockedState branch commit message url
        createdBy { __typename ... on User { name email }
          ... on UnregisteredUser { authorName: name } }
        source { __typename name }
        env
        metaData(first: 5) { edges { node { key value } } }
        pipeline { slug }
        organization { slug }
        annotations(first: 5) { edges { node { context style body { text } } } }
        jobs(first: 10) {
          count
          edges { node {
            __typename
            ... on JobInterface { uuid retried retriesCount retryType }
            ... on JobTypeCommand { label state command exitStatus passed softFailed url
              agent { name } agentQueryRules priority { number } step { key }
              artifacts(first: 5) { edges { node { path } } } }
            ... on JobTypeWait { state step { uuid } }
            ... on JobTypeBlock { label state isUnblockable unblockedBy { name } }
          } }
        }
      } }
    }
  }
  missing: build(slug: "acme/p/999") { number }
  badCursor: pipeline(slug: $pipeline) { builds(first: 1, after: "not-a-cursor") { count } }
}

fragment PipelineFields on Pipeline {
  id uuid slug name url badgeURL description defaultBranch visibility archived createdAt
  nextBuildNumber allowRebuilds tags { label } steps { yaml }
  createdBy { name }
  schedules(first: 5) { count edges { node { label cronline enabled } } }
}
"""

BAD_FIELD = "{ viewer { user { nope } } }"


def _answer(server: LiveServer, token: str, query: str, variables: dict[str, Any]) -> Any:
    with server.client(token) as http:
        response = post(http, query, variables)
    return (
        response.status_code,
        response.headers.get("RateLimit-Complexity-Requested"),
        response.headers.get("RateLimit-Complexity-Actual"),
        response.content,
    )


def _both(
    fast: LiveServer, stock: LiveServer, token: str, query: str, **variables: Any
) -> httpx.Response:
    expected = _answer(stock, token, query, variables)
    assert _answer(fast, token, query, variables) == expected
    return httpx.Response(expected[0], content=expected[3])


def test_both_modes_answer_the_same(make_server: MakeServer) -> None:
    # One public URL: the answers' URLs would otherwise name each server's port.
    fast = make_server(graphql_execution="fast", public_url=PUBLIC_URL)
    stock = make_server(graphql_execution="stock", public_url=PUBLIC_URL, run_workers=False)
    org = Org.create(fast)
    org.pipeline("q")
    created = org.build(message="Ship it", env={"FROM_BUILD": "yes"}, meta_data={"k": "v"})
    org.build(branch="feature")
    org.build("q")
    org.run_first_job("0")
    agent = org.agent()
    agent.take_job()
    pipeline_id = org.get("pipelines/p")["graphql_id"]
    schedule = post(
        org.rest,
        "mutation S($p: ID!) { pipelineScheduleCreate(input: "
        '{ pipelineID: $p, label: "nightly", cronline: "0 3 * * *", branch: "main" }) '
        "{ pipelineScheduleEdge { node { label } } } }",
        {"p": pipeline_id},
    )
    assert "errors" not in schedule.json(), schedule.text
    token = org.identity.api_token

    build = _both(fast, stock, token, GET_BUILD, uuid=created["id"]).json()
    assert build["data"]["build"]["number"] == 1
    listed = _both(fast, stock, token, LIST_PIPELINES, org=org.slug).json()
    assert len(listed["data"]["organization"]["pipelines"]["edges"]) == 2
    _both(fast, stock, token, SEARCH_BUILDS, org=org.slug, pipeline="acme/p")

    everything = _both(fast, stock, token, EVERYTHING, org=org.slug, pipeline="acme/p").json()
    assert "data" in everything, everything
    assert everything["data"]["missing"] is None
    assert [error["path"] for error in everything["errors"]] == [["badCursor", "builds"]]
    jobs = everything["data"]["pipeline"]["builds"]["edges"][-1]["node"]["jobs"]["edges"]
    assert {job["node"]["__typename"] for job in jobs} == {
        "JobTypeCommand",
        "JobTypeWait",
        "JobTypeBlock",
    }

    refused = _both(fast, stock, token, BAD_FIELD)
    assert "nope" in refused.json()["errors"][0]["message"]
