"""Every REST endpoint checks its own scope (403 with Buildkite's message) and hides other
organizations' objects (404)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kiteline.server.kit.scopes import SCOPES
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer, pipeline_with_a_build

B = "/v2/organizations/acme/pipelines/p/builds/1"
J = B + "/jobs/{job}"
OJ = "/v2/organizations/acme/jobs/{job}"
A = J + "/artifacts/{artifact}"
S = "/v2/organizations/acme/services/{service}"
D = S + "/deliveries/{delivery}"
HOOK = {"provider": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"}}

# (method, path, scope, JSON body): the specification of which scope guards what.
ENDPOINTS: list[tuple[str, str, str | None, Any]] = [
    ("GET", "/v2/user", "read_user", None),
    ("GET", "/v2/organizations", "read_organizations", None),
    ("GET", "/v2/organizations/acme", "read_organizations", None),
    ("GET", "/v2/organizations/acme/rate_limit", "read_organizations", None),
    ("GET", "/v2/organizations/acme/pipelines", "read_pipelines", None),
    (
        "POST",
        "/v2/organizations/acme/pipelines",
        "write_pipelines",
        {"name": "New", "configuration": "steps:\n  - command: x\n"},
    ),
    ("GET", "/v2/organizations/acme/pipelines/p", "read_pipelines", None),
    ("PATCH", "/v2/organizations/acme/pipelines/p", "write_pipelines", {"description": "d"}),
    ("DELETE", "/v2/organizations/acme/pipelines/p", "write_pipelines", None),
    ("POST", "/v2/organizations/acme/pipelines/p/archive", "write_pipelines", None),
    ("POST", "/v2/organizations/acme/pipelines/p/unarchive", "write_pipelines", None),
    ("GET", "/v2/organizations/acme/pipelines/p/source-deliveries", "read_pipelines", None),
    ("GET", "/v2/builds", "read_builds", None),
    ("GET", "/v2/organizations/acme/builds", "read_builds", None),
    ("GET", "/v2/organizations/acme/pipelines/p/builds", "read_builds", None),
    (
        "POST",
        "/v2/organizations/acme/pipelines/p/builds",
        "write_builds",
        {"commit": "HEAD", "branch": "main"},
    ),
    ("GET", B, "read_builds", None),
    ("PUT", B + "/cancel", "write_builds", None),
    ("PUT", B + "/rebuild", "write_builds", None),
    ("GET", J, "read_builds", None),
    ("GET", OJ, "read_builds", None),
    ("PUT", J + "/retry", "write_builds", None),
    ("PUT", OJ + "/retry", "write_builds", None),
    ("PUT", J + "/unblock", "write_builds", {}),
    ("PUT", OJ + "/unblock", "write_builds", {}),
    ("GET", J + "/log", "read_build_logs", None),
    ("GET", J + "/log.txt", "read_build_logs", None),
    ("GET", OJ + "/log", "read_build_logs", None),
    ("GET", OJ + "/log.txt", "read_build_logs", None),
    ("DELETE", J + "/log", "write_build_logs", None),
    ("DELETE", OJ + "/log", "write_build_logs", None),
    ("GET", J + "/env", "read_job_env", None),
    ("GET", J + "/env.txt", "read_job_env", None),
    ("GET", OJ + "/env", "read_job_env", None),
    ("GET", OJ + "/env.txt", "read_job_env", None),
    ("GET", B + "/artifacts", "read_artifacts", None),
    ("GET", J + "/artifacts", "read_artifacts", None),
    ("GET", A, "read_artifacts", None),
    ("GET", A + "/download", "read_artifacts", None),
    ("DELETE", A, "write_artifacts", None),
    ("GET", B + "/annotations", "read_builds", None),
    ("POST", B + "/annotations", "write_builds", {"body": "hi"}),
    ("DELETE", B + "/annotations/default", "write_builds", None),
    ("GET", B + "/meta-data", "read_builds", None),
    ("GET", B + "/meta-data/release", "read_builds", None),
    ("POST", B + "/meta-data", "write_builds", {"key": "k", "value": "v"}),
    ("GET", "/v2/organizations/acme/agents", "read_agents", None),
    ("GET", "/v2/organizations/acme/agents/{agent}", "read_agents", None),
    ("PUT", "/v2/organizations/acme/agents/{agent}/stop", "write_agents", {"force": False}),
    ("GET", "/v2/organizations/acme/services", "read_notification_services", None),
    ("POST", "/v2/organizations/acme/services", "write_notification_services", HOOK),
    ("GET", S, "read_notification_services", None),
    ("PATCH", S, "write_notification_services", {"description": "d"}),
    ("DELETE", S, "write_notification_services", None),
    ("PUT", S + "/enable", "write_notification_services", None),
    ("PUT", S + "/disable", "write_notification_services", None),
    ("POST", S + "/ping", "write_notification_services", None),
    ("GET", S + "/deliveries", "read_notification_services", None),
    ("GET", D, "read_notification_services", None),
    ("POST", D + "/redeliver", "write_notification_services", None),
    ("GET", "/v2/access-token", None, None),
    ("DELETE", "/v2/access-token", None, None),
]


@pytest.fixture
def world(server: LiveServer) -> dict[str, Any]:
    owner = server.identity("acme")
    client = server.client(owner.api_token)
    pipeline_with_a_build(client, "steps:\n  - command: make\n", meta_data={"release": "1"})
    agent = ScriptedAgent.register(server.url, owner.agent_token)
    job = agent.take_job()
    content = b"x"
    artifact, instructions = agent.declare_artifact(job, content, path="a.txt")
    action = instructions["action"]
    httpx.post(action["url"], files={"file": ("a.txt", content)}).raise_for_status()
    client.post(f"{B}/annotations", json={"body": "note"})
    service = client.post("/v2/organizations/acme/services", json=HOOK).json()
    delivery = client.get(service["deliveries_url"]).json()["items"][0]["id"]
    return {
        "job": job["id"],
        "artifact": artifact,
        "agent": agent.id,
        "service": service["id"],
        "delivery": delivery,
    }


def _call(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    return (
        client.request(method, path, json=body)
        if body is not None
        else client.request(method, path)
    )


def test_the_table_covers_every_rest_route(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/v2/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v2/") and path != "/v2/meta"
        for method in operations
    }
    missing = {
        (method, template)
        for method, template in served
        if not any(m == method and _same_route(template, p) for m, p, _, _ in ENDPOINTS)
    }
    assert missing == set()


def _same_route(template: str, path: str) -> bool:
    """`/pipelines/{slug}/log.{suffix}` matches `/pipelines/p/log.txt`."""
    expected, actual = template.split("/"), path.split("/")
    return len(expected) == len(actual) and all(
        e == a or e.startswith("{") or (e.endswith(".{suffix}") and a.split(".")[0] == e[:-9])
        for e, a in zip(expected, actual, strict=True)
    )


def test_each_endpoint_refuses_a_token_without_its_scope(
    server: LiveServer, world: dict[str, Any]
) -> None:
    tokens: dict[str, str] = {}
    for method, path, scope, body in ENDPOINTS:
        if scope is None:
            continue
        if scope not in tokens:
            others = [s for s in SCOPES if s != scope]
            tokens[scope] = server.identity("acme", scopes=others).api_token
        response = _call(server.client(tokens[scope]), method, path.format(**world), body)
        assert (method, path, response.status_code, response.json()) == (
            method,
            path,
            403,
            {"message": f"Your access token doesn't have the {scope} scope"},
        )


def test_another_organizations_objects_are_not_found(
    server: LiveServer, world: dict[str, Any]
) -> None:
    stranger = server.client(server.identity("other").api_token)
    for method, path, _, body in ENDPOINTS:
        if "/organizations/acme" not in path:
            continue
        response = _call(stranger, method, path.format(**world), body)
        assert (method, path, response.status_code) == (method, path, 404)
    for path in (OJ.replace("acme", "other"), "/v2/organizations/other/agents/{agent}"):
        response = stranger.get(path.format(**world))
        assert response.status_code == 404
        assert response.json()["message"] in ("No job found", "No agent found")
    assert stranger.get("/v2/builds").json() == []
