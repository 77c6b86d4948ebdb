"""GraphQL in tests: the `gql` client with the schema fetched by introspection (so every query
is validated against it), raw POSTs for what `gql` would refuse to send, and a small org."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

PIPELINE = """
steps:
  - key: compile
    label: Compile
    command: echo compile
    env:
      STEP_VAR: from-step
  - wait
  - block: Release?
    key: release
    fields:
      - text: Version
        key: version
  - label: Deploy
    command: echo deploy
"""


def gql_client(server: LiveServer, token: str) -> Client:
    transport = HTTPXTransport(
        url=f"{server.url}/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return Client(transport=transport, fetch_schema_from_transport=True)


def execute(client: Client, query: str, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.execute(
        GraphQLRequest(query, variable_values=variables or None)
    )
    return result


def post(
    http: httpx.Client,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    path: str = "/v1",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return http.post(path, json=body, headers=headers or {})


@dataclass
class Org:
    """An organization with a member, their clients, and a pipeline `p` of PIPELINE."""

    server: LiveServer
    identity: Identity
    rest: httpx.Client
    gql: Client

    @classmethod
    def create(cls, server: LiveServer, slug: str = "acme") -> Org:
        identity = server.identity(slug)
        token = identity.api_token
        org = cls(server, identity, server.client(token), gql_client(server, token))
        org.pipeline("p")
        return org

    @property
    def slug(self) -> str:
        return self.identity.org

    def pipeline(self, slug: str, configuration: str = PIPELINE) -> dict[str, Any]:
        response = self.rest.post(
            f"/v2/organizations/{self.slug}/pipelines",
            json={"name": slug, "configuration": configuration},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def build(self, pipeline: str = "p", **fields: Any) -> dict[str, Any]:
        response = self.rest.post(
            f"/v2/organizations/{self.slug}/pipelines/{pipeline}/builds",
            json={"commit": "HEAD", "branch": "main", **fields},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def get(self, path: str, **params: Any) -> Any:
        response = self.rest.get(f"/v2/organizations/{self.slug}/{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def agent(self) -> ScriptedAgent:
        return ScriptedAgent.register(self.server.url, self.identity.agent_token)

    def run_first_job(self, exit_status: str = "0") -> dict[str, Any]:
        """An agent takes the next job and finishes it."""
        agent = self.agent()
        job = agent.take_job()
        assert agent.finish(job, exit_status).status_code == 200
        return job
