"""Pipelines over REST: update, delete, archive, unarchive, legacy steps."""

from __future__ import annotations

from tests.support.live_server import LiveServer

PIPELINE = "steps:\n  - command: echo hello\n"
ROOT = "/v2/organizations/acme/pipelines"


def _client(server: LiveServer):  # type: ignore[no-untyped-def]
    client = server.client(server.identity("acme").api_token)
    assert client.post(ROOT, json={"name": "P", "configuration": PIPELINE}).status_code == 201
    return client


def test_patch_changes_fields_and_configuration(server: LiveServer) -> None:
    client = _client(server)
    new_configuration = "steps:\n  - command: echo changed\n"
    response = client.patch(
        f"{ROOT}/p",
        json={
            "description": "Updated description",
            "configuration": new_configuration,
            "default_branch": "trunk",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["description"], body["default_branch"]) == ("Updated description", "trunk")
    assert body["configuration"] == new_configuration
    assert body["steps"][0]["command"] == "echo changed"
    build = client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "trunk"}).json()
    assert build["jobs"][0]["command"] == "echo changed"


def test_patch_with_steps_but_no_configuration_is_422(server: LiveServer) -> None:
    client = _client(server)
    response = client.patch(f"{ROOT}/p", json={"steps": [{"type": "script", "command": "x"}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "steps"


def test_patch_with_invalid_configuration_changes_nothing(server: LiveServer) -> None:
    client = _client(server)
    response = client.patch(f"{ROOT}/p", json={"description": "new", "configuration": "steps: [ {"})
    assert response.status_code == 422
    body = client.get(f"{ROOT}/p").json()
    assert (body["description"], body["configuration"]) == (None, PIPELINE)


def test_delete_removes_pipeline_and_its_builds(server: LiveServer) -> None:
    client = _client(server)
    client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    assert client.delete(f"{ROOT}/p").status_code == 204
    assert client.get(f"{ROOT}/p").status_code == 404
    assert client.get("/v2/organizations/acme/builds").json() == []


def test_archive_blocks_new_builds_until_unarchived(server: LiveServer) -> None:
    client = _client(server)
    archived = client.post(f"{ROOT}/p/archive")
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    refused = client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"})
    assert refused.status_code == 422
    assert refused.json() == {"message": "Builds can't be created for an archived pipeline"}
    again = client.post(f"{ROOT}/p/archive")
    assert again.status_code == 422
    assert again.json() == {"message": "Pipeline could not be archived."}
    assert client.post(f"{ROOT}/p/unarchive").json()["archived_at"] is None
    assert (
        client.post(f"{ROOT}/p/builds", json={"commit": "HEAD", "branch": "main"}).status_code
        == 201
    )


def test_legacy_steps_create_an_equivalent_configuration(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    response = client.post(
        f"{ROOT}/",
        json={
            "name": "Legacy",
            "repository": "git@github.com:org/repo.git",
            "steps": [
                {"type": "script", "name": "Build", "command": "make build"},
                {"type": "waiter"},
                {"type": "script", "name": "Test", "command": "make test"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    steps = response.json()["steps"]
    assert [(s["type"], s.get("name"), s.get("command")) for s in steps] == [
        ("script", "Build", "make build"),
        ("waiter", None, None),
        ("script", "Test", "make test"),
    ]


def test_list_filters_by_name_and_repository_ignoring_case(server: LiveServer) -> None:
    client = _client(server)
    for name, repository in (("Web App", "git@github.com:acme/web.git"), ("API", "https://x/api")):
        created = client.post(
            ROOT, json={"name": name, "configuration": PIPELINE, "repository": repository}
        )
        assert created.status_code == 201, created.text

    def slugs(**params: str) -> list[str]:
        response = client.get(ROOT, params=params)
        assert response.status_code == 200
        return [pipeline["slug"] for pipeline in response.json()]

    assert slugs() == ["api", "p", "web-app"]
    assert slugs(name="web") == ["web-app"]
    assert slugs(name="A") == ["api", "web-app"]
    assert slugs(repository="GITHUB.com:acme") == ["web-app"]
    assert slugs(name="web", repository="api") == []
    assert slugs(name="%") == []


DANGLING = "steps:\n  - label: deploy\n    command: ship\n    depends_on: tests\n"


def test_create_refuses_depends_on_a_key_no_step_has_naming_the_step(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    response = client.post(ROOT, json={"name": "Dangling", "configuration": DANGLING})
    assert response.status_code == 422
    assert response.json() == {
        "message": "Validation Failed",
        "errors": [
            {
                "field": "configuration",
                "code": 'Step 1 ("deploy"): depends_on names "tests", but no step has that key',
            }
        ],
    }
    assert client.get(f"{ROOT}/dangling").status_code == 404


def test_patch_refuses_a_misspelt_step_key_with_a_suggestion(server: LiveServer) -> None:
    client = _client(server)
    response = client.patch(f"{ROOT}/p", json={"configuration": "steps:\n  - commandd: echo hi\n"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "configuration",
            "code": "Step 1: has none of the keys that make a step "
            '(command, wait, block, input, trigger or group); did you mean "command"?',
        }
    ]
    assert client.get(f"{ROOT}/p").json()["configuration"] == PIPELINE


def test_saved_steps_are_interpolated_when_a_build_is_created(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    configuration = (
        "env:\n  GREETING: hi from ${BUILDKITE_PIPELINE_SLUG}\n"
        "steps:\n  - command: echo '$$HOME' \"$GREETING on $BUILDKITE_BRANCH\"\n"
    )
    created = client.post(ROOT, json={"name": "Saved", "configuration": configuration})
    assert created.status_code == 201, created.text
    build = client.post(f"{ROOT}/saved/builds", json={"commit": "HEAD", "branch": "topic"})
    assert build.status_code == 201, build.text
    assert build.json()["jobs"][0]["command"] == "echo '$HOME' \"hi from saved on topic\""


def test_a_required_variable_missing_from_saved_steps_refuses_the_build(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    configuration = "steps:\n  - command: deploy ${TARGET?choose a target}\n"
    assert (
        client.post(ROOT, json={"name": "Req", "configuration": configuration}).status_code == 201
    )
    build = client.post(f"{ROOT}/req/builds", json={"commit": "HEAD", "branch": "main"})
    assert build.status_code == 422
    assert build.json()["errors"] == [
        {"field": "configuration", "code": "$TARGET: choose a target"}
    ]
