"""REST errors: Buildkite's bodies and statuses for bad tokens, scopes, input, unknown objects."""

from __future__ import annotations

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
