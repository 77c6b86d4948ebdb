"""REST errors: Buildkite's bodies and statuses for bad tokens, scopes, input, unknown objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import utcnow
from kiteline.server.kit.secrets import hash_token
from kiteline.server.tokens.models import ApiToken
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

UNAUTHORIZED = (
    "Authentication required. Please supply a valid API Access Token: "
    "https://buildkite.com/docs/apis/rest-api#authentication"
)
PIPELINE = "steps:\n  - command: echo hello\n"


def test_missing_token_is_401_with_buildkites_message(server: LiveServer) -> None:
    response = server.client(None).get("/v2/organizations")
    assert response.status_code == 401
    assert response.json() == {"message": UNAUTHORIZED}


def test_unknown_token_is_401(server: LiveServer) -> None:
    response = server.client("bkua_not-a-real-token").get("/v2/organizations")
    assert response.status_code == 401
    assert response.json() == {"message": UNAUTHORIZED}


def test_token_without_scope_is_403_naming_the_scope(server: LiveServer) -> None:
    identity = server.identity("acme", scopes=["read_pipelines"])
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines", json={"name": "x", "configuration": PIPELINE}
    )
    assert response.status_code == 403
    assert response.json() == {
        "message": "Your access token doesn't have the write_pipelines scope"
    }


def test_unknown_pipeline_is_404(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).get("/v2/organizations/acme/pipelines/nope")
    assert response.status_code == 404
    assert response.json() == {"message": "No pipeline found"}


def test_another_organizations_pipeline_is_404(server: LiveServer) -> None:
    owner = server.identity("acme")
    stranger = server.identity("other")
    created = server.client(owner.api_token).post(
        "/v2/organizations/acme/pipelines", json={"name": "Secret", "configuration": PIPELINE}
    )
    assert created.status_code == 201
    response = server.client(stranger.api_token).get("/v2/organizations/acme/pipelines/secret")
    assert response.status_code == 404
    assert response.json() == {"message": "No organization found"}


def test_malformed_json_is_400(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines",
        content=b'{"name": "x", ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Problems parsing JSON")


def test_invalid_yaml_is_422_on_configuration(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines",
        json={"name": "Broken", "configuration": "steps:\n  - command: [unclosed\n"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "Validation Failed"
    assert [error["field"] for error in body["errors"]] == ["configuration"]
    assert "YAML" in body["errors"][0]["code"] or "yaml" in body["errors"][0]["code"]


def test_invalid_step_is_422_naming_step_and_key(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines",
        json={
            "name": "Bad step",
            "configuration": "steps:\n  - command: a\n  - key: build\n    command: b\n"
            "    timeout_in_minutes: soon\n",
        },
    )
    assert response.status_code == 422
    code = response.json()["errors"][0]["code"]
    assert "build" in code and "timeout_in_minutes" in code


def test_missing_required_field_is_422_validation_failed(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    response = client.post("/v2/organizations/acme/pipelines/p/builds", json={"branch": "main"})
    assert response.status_code == 422
    assert response.json() == {
        "message": "Validation Failed",
        "errors": [{"field": "commit", "code": "Field required"}],
    }


def test_missing_configuration_is_422_with_buildkites_code(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines", json={"name": "Empty"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "configuration",
            "code": 'Step configuration is missing, expected `steps: { yaml: "..." }`',
        }
    ]


def test_unknown_build_number_is_404(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    for number in ("7", "abc"):
        response = client.get(f"/v2/organizations/acme/pipelines/p/builds/{number}")
        assert response.status_code == 404
        assert response.json() == {"message": "No build found"}


def test_unknown_route_is_404_json(server: LiveServer) -> None:
    response = server.client(None).get("/agentedge.v1.AgentEdgeService/StreamPings")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def _org_with_a_job(
    server: LiveServer, slug: str
) -> tuple[httpx.Client, ScriptedAgent, dict[str, Any]]:
    identity = server.identity(slug)
    client = server.client(identity.api_token)
    client.post(
        f"/v2/organizations/{slug}/pipelines",
        json={"name": "P", "configuration": "steps:\n  - command: x\n"},
    )
    client.post(
        f"/v2/organizations/{slug}/pipelines/p/builds", json={"commit": "HEAD", "branch": "main"}
    )
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    return client, agent, agent.ping(5)["job"]


def test_a_job_id_of_another_build_or_organization_is_404_in_job_artifacts(
    server: LiveServer,
) -> None:
    client, _, _ = _org_with_a_job(server, "acme")
    _, _, stranger_job = _org_with_a_job(server, "other")
    jobs = "/v2/organizations/acme/pipelines/p/builds/1/jobs"
    own_job = client.get("/v2/organizations/acme/pipelines/p/builds/1").json()["jobs"][0]["id"]
    assert client.get(f"{jobs}/{own_job}/artifacts").json() == []
    for job_id in (stranger_job["id"], "00000000-0000-0000-0000-000000000000", "x"):
        response = client.get(f"{jobs}/{job_id}/artifacts")
        assert response.status_code == 404, job_id
        assert response.json() == {"message": "No job found"}


def test_another_organizations_agent_learns_nothing_of_a_job(server: LiveServer) -> None:
    _, owner, job = _org_with_a_job(server, "acme")
    _, stranger, _ = _org_with_a_job(server, "other")
    not_found = {"message": "No job found"}
    accepted = stranger.call("PUT", f"/jobs/{job['id']}/accept")
    assert (accepted.status_code, accepted.json()) == (404, not_found)
    for method, suffix in [("PUT", "/start"), ("GET", ""), ("PUT", "/finish")]:
        response = stranger.call(method, f"/jobs/{job['id']}{suffix}", json={"exit_status": "0"})
        assert (response.status_code, response.json()) == (404, not_found), suffix
    chunk = stranger.log({"id": job["id"], "token": stranger.access_token}, 1, 0, b"x")
    assert (chunk.status_code, chunk.json()) == (404, not_found)
    # The owner's agent still takes it, untouched.
    assert owner.call("PUT", f"/jobs/{job['id']}/accept").json()["state"] == "accepted"


def test_a_chunk_is_authenticated_before_its_body_is_looked_at(server: LiveServer) -> None:
    _, agent, job = _org_with_a_job(server, "acme")
    unknown = "00000000-0000-0000-0000-000000000000"
    for job_id in (job["id"], unknown):
        refused = agent.http.post(
            f"/jobs/{job_id}/chunks",
            params={"sequence": 1, "offset": 0, "size": 999},
            headers={"Authorization": "Token bkaj_wrong", "Content-Encoding": "gzip"},
            content=b"not gzip, and not 999 bytes",
        )
        assert refused.status_code == 401, job_id
        assert refused.json() == {"message": "Invalid agent or job access token"}
    # With its token, the same body is refused for what it is.
    accepted = agent.call("PUT", f"/jobs/{job['id']}/accept").json()
    bad = agent.http.post(
        f"/jobs/{job['id']}/chunks",
        params={"sequence": 1, "offset": 0, "size": 999},
        headers={"Authorization": f"Token {accepted['token']}", "Content-Encoding": "gzip"},
        content=b"not gzip, and not 999 bytes",
    )
    assert bad.status_code == 400


def test_a_405_allows_every_method_of_the_path(server: LiveServer) -> None:
    job_id = "00000000-0000-0000-0000-000000000000"
    for path, allowed in [
        (f"/v3/jobs/{job_id}/artifacts", "POST, PUT"),
        ("/v2/organizations/acme/pipelines/p", "DELETE, GET, PATCH"),
    ]:
        response = httpx.request("TRACE", f"{server.url}{path}")
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed
        assert response.json() == {"message": "Method Not Allowed"}


def test_a_token_revoked_or_expired_is_refused_on_its_next_request(server: LiveServer) -> None:
    """Authentication reads the token in every request: a build list served a moment ago is
    refused as soon as its token is revoked, or has expired."""
    identity = server.identity("acme", scopes=["read_builds", "write_pipelines"])
    client = server.client(identity.api_token)
    created = client.post(
        "/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE}
    )
    assert created.status_code == 201, created.text
    path = "/v2/organizations/acme/pipelines/p/builds"
    assert client.get(path).status_code == 200

    async def expire(session: AsyncSession) -> None:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(identity.api_token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    server.admin(expire)
    refused = client.get(path)
    assert (refused.status_code, refused.json()) == (401, {"message": UNAUTHORIZED})

    other = server.client(server.identity("acme").api_token)
    assert other.get(path).status_code == 200
    assert other.delete("/v2/access-token").status_code == 204
    refused = other.get(path)
    assert (refused.status_code, refused.json()) == (401, {"message": UNAUTHORIZED})
