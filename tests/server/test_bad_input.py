"""Bad input gets a clear error and loses nothing: nulls, deep pages, extreme dates, odd slugs,
and (on PostgreSQL) values the database can't store."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

ROOT = "/v2/organizations/acme/pipelines"
YAML = "steps:\n  - command: x\n"


def test_patch_with_null_for_a_required_field_is_422_and_changes_nothing(
    server: LiveServer,
) -> None:
    client = server.client(server.identity("acme").api_token)
    client.post(ROOT, json={"name": "P", "configuration": YAML})
    response = client.patch(
        f"{ROOT}/p", json={"visibility": None, "env": None, "description": "changed"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "env", "code": "can't be null"},
        {"field": "visibility", "code": "can't be null"},
    ]
    assert client.get(f"{ROOT}/p").json()["description"] is None
    assert client.patch(f"{ROOT}/p", json={"description": None}).status_code == 200
    bad = client.patch(f"{ROOT}/p", json={"visibility": "secret"})
    assert bad.json()["errors"] == [
        {"field": "visibility", "code": "must be one of private, public"}
    ]


def test_slugs_must_be_url_safe(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    response = client.post(ROOT, json={"name": "P", "slug": "a/b", "configuration": YAML})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "slug"


def test_deep_pages_and_extreme_dates_are_400(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    deep = client.get(ROOT, params={"page": "99999999999999999999"})
    assert deep.status_code == 400
    assert deep.json()["message"].startswith("Listing this deep is not supported")
    extreme = client.get(
        "/v2/organizations/acme/builds", params={"created_from": "0001-01-01T00:00:00+14:00"}
    )
    assert extreme.status_code == 400
    assert "created_from" in extreme.json()["message"]


def test_values_the_database_cannot_store_are_422_not_500(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    for name in ("nul\u0000name", "x" * 300):
        response = client.post(ROOT, json={"name": name, "configuration": YAML})
        # SQLite stores both; PostgreSQL refuses them: either way, never a 500.
        assert response.status_code in (201, 422)
        if response.status_code == 422:
            assert "can't be stored" in response.json()["message"]


NUL_AT_2 = "must not contain control characters (found U+0000 at position 2)"
BUILDS = f"{ROOT}/p/builds"


def _pipeline(server: LiveServer, configuration: str = YAML) -> httpx.Client:
    client = server.client(server.identity("acme").api_token)
    created = client.post(ROOT, json={"name": "P", "configuration": configuration})
    assert created.status_code == 201, created.text
    return client


def test_control_characters_in_a_new_builds_names_are_422_naming_the_field(
    server: LiveServer,
) -> None:
    client = _pipeline(server)
    cases = [
        ({"branch": "ma\u0000in"}, "branch", NUL_AT_2),
        ({"branch": "ma\nin"}, "branch", NUL_AT_2.replace("0000", "000A")),
        ({"commit": "ab\u001b[31m"}, "commit", NUL_AT_2.replace("0000", "001B")),
        (
            {"meta_data": {"ok": "1", "k\u0007": "v"}},
            "meta_data",
            "key 'k\\x07' must not contain control characters (found U+0007 at position 1)",
        ),
    ]
    for fields, field, code in cases:
        response = client.post(BUILDS, json={"commit": "HEAD", "branch": "main", **fields})
        assert response.status_code == 422, fields
        assert response.json() == {
            "message": "Validation Failed",
            "errors": [{"field": field, "code": code}],
        }
    # A tab is plain text; non-ASCII letters are names like any other.
    fine = client.post(BUILDS, json={"commit": "HEAD", "branch": "feature/été\tx"})
    assert fine.status_code == 201
    assert [build["branch"] for build in client.get(BUILDS).json()] == ["feature/été\tx"]


def test_control_characters_in_a_graphql_build_create_are_refused(server: LiveServer) -> None:
    client = _pipeline(server)
    pipeline_id = client.get(f"{ROOT}/p").json()["graphql_id"]
    response = client.post(
        "/v1",
        json={
            "query": "mutation($input: BuildCreateInput!) { buildCreate(input: $input) "
            "{ build { number } } }",
            "variables": {"input": {"pipelineID": pipeline_id, "branch": "ma\u0000in"}},
        },
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == f"Validation Failed: branch {NUL_AT_2}"
    assert client.get(BUILDS).json() == []


def test_a_pipelines_default_branch_must_be_plain(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    created = client.post(
        ROOT, json={"name": "P", "configuration": YAML, "default_branch": "ma\u0000in"}
    )
    assert created.status_code == 422
    assert created.json()["errors"] == [{"field": "default_branch", "code": NUL_AT_2}]
    assert client.get(ROOT).json() == []
    client.post(ROOT, json={"name": "P", "configuration": YAML})
    patched = client.patch(f"{ROOT}/p", json={"default_branch": "ma\u0000in"})
    assert patched.status_code == 422
    assert patched.json()["errors"] == [{"field": "default_branch", "code": NUL_AT_2}]
    assert client.get(f"{ROOT}/p").json()["default_branch"] == "main"


def test_control_characters_in_step_keys_labels_and_trigger_branches_are_refused(
    server: LiveServer,
) -> None:
    client = server.client(server.identity("acme").api_token)
    cases = {
        'steps:\n  - label: "a\\u001b[2Jb"\n    command: x\n': (
            "steps[0].label must not contain control characters (found U+001B at position 1)"
        ),
        'steps:\n  - group: g\n    steps:\n      - label: "ok"\n        command: x\n'
        '      - label: "b\\u0000"\n        command: y\n': (
            "steps[0].steps[1].label must not contain control characters "
            "(found U+0000 at position 1)"
        ),
        'steps:\n  - trigger: other\n    build:\n      branch: "ma\\u0000in"\n': (
            f"steps[0].build.branch {NUL_AT_2}"
        ),
    }
    for configuration, code in cases.items():
        response = client.post(ROOT, json={"name": "P", "configuration": configuration})
        assert response.status_code == 422, configuration
        assert response.json()["errors"] == [{"field": "configuration", "code": code}]
    assert client.get(ROOT).json() == []


def _running_job(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent, dict[str, Any]]:
    client = _pipeline(server)
    client.post(BUILDS, json={"commit": "HEAD", "branch": "main"})
    agent = ScriptedAgent.register(server.url, server.identity("acme").agent_token)
    return client, agent, agent.take_job()


def test_artifact_paths_must_be_plain_and_relative(server: LiveServer) -> None:
    client, agent, job = _running_job(server)
    refused = {
        "a\u0000b": "must not contain control characters (found U+0000 at position 1)",
        "line\nbreak.txt": "must not contain control characters (found U+000A at position 4)",
        "/etc/passwd": "must be a relative path, not absolute: '/etc/passwd'",
        "C:/Windows/win.ini": "must be a relative path, not absolute: 'C:/Windows/win.ini'",
        "c:\\temp\\x": "must be a relative path, not absolute: 'c:\\\\temp\\\\x'",
        "../outside": "must stay inside its directory (no ..): '../outside'",
        "a/../../outside": "must stay inside its directory (no ..): 'a/../../outside'",
        " ": "must be a relative file path, got ' '",
    }
    for path, code in refused.items():
        response = agent.call(
            "POST",
            f"/jobs/{job['id']}/artifacts",
            token=job["token"],
            json={"artifacts": [{"path": "fine.txt"}, {"path": path, "file_size": 1}]},
        )
        assert response.status_code == 422, path
        assert response.json()["errors"] == [{"field": "artifacts[1].path", "code": code}]
    assert client.get(f"{BUILDS}/1/artifacts").json() == []
    accepted = agent.call(
        "POST",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"artifacts": [{"path": 'dist/./résumé "final".txt', "file_size": 0}]},
    )
    assert accepted.status_code == 200
    (listed,) = client.get(f"{BUILDS}/1/artifacts").json()
    assert listed["path"] == 'dist/résumé "final".txt'


def test_a_non_ascii_artifact_name_downloads_with_an_encoded_file_name(
    server: LiveServer,
) -> None:
    _, agent, job = _running_job(server)
    content = b"data"
    batch = agent.call(
        "POST",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"artifacts": [{"path": 'out/été "1".txt', "file_size": len(content)}]},
    ).json()
    (artifact_id,) = batch["artifact_ids"]
    action = batch["per_artifact_instructions"][artifact_id]["action"]
    assert httpx.post(action["url"], files={"file": ("x", content)}).status_code == 201
    agent.call(
        "PUT",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"artifacts": [{"id": artifact_id, "state": "finished"}]},
    )
    (found,) = agent.call(
        "GET", f"/builds/{job['env']['BUILDKITE_BUILD_ID']}/artifacts/search", token=job["token"]
    ).json()
    download = httpx.get(found["url"])
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"_t_ _1_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%20%221%22.txt"
    )


def test_meta_data_keys_and_annotation_contexts_must_be_plain(server: LiveServer) -> None:
    client, agent, job = _running_job(server)
    jobs = f"/jobs/{job['id']}"
    code = "must not contain control characters (found U+001B at position 1)"
    for path, body, field in [
        (f"{jobs}/data/set", {"key": "k\u001b", "value": "v"}, "key"),
        (f"{jobs}/data/set-batch", {"items": [{"key": "k\u001b", "value": "v"}]}, "key"),
        (f"{jobs}/annotations", {"body": "hi", "context": "c\u001b"}, "context"),
    ]:
        response = agent.call("POST", path, token=job["token"], json=body)
        assert response.status_code == 422, path
        assert response.json()["errors"] == [{"field": field, "code": code}]
    rest = client.post(f"{BUILDS}/1/meta-data", json={"key": "k\u001b", "value": "v"})
    assert rest.status_code == 422
    assert rest.json()["errors"] == [{"field": "key", "code": code}]
    assert client.get(f"{BUILDS}/1").json()["meta_data"] == {}
    assert client.get(f"{BUILDS}/1/annotations").json() == []


def test_an_uploaded_pipeline_with_a_control_character_in_a_label_is_refused(
    server: LiveServer,
) -> None:
    client, agent, job = _running_job(server)
    response = agent.call(
        "POST",
        f"/jobs/{job['id']}/pipelines",
        token=job["token"],
        json={
            "uuid": "0b6a4e8c-1c0e-4d6a-9c5e-2f5d3c9b7a10",
            "pipeline": {"steps": [{"command": "y"}, {"command": "x", "label": "a\u0000"}]},
        },
    )
    assert response.status_code == 422
    assert response.json() == {
        "message": "The uploaded pipeline is invalid: steps[1].label must not contain "
        "control characters (found U+0000 at position 1)"
    }
    assert len(client.get(f"{BUILDS}/1").json()["jobs"]) == 1


OUT_OF_RANGE = ("0", "-1", str(2**31), str(2**63), str(2**64), "1e3", "²", "٣")


def test_build_numbers_no_build_can_have_are_404(server: LiveServer) -> None:
    client = _pipeline(server)
    client.post(BUILDS, json={"commit": "HEAD", "branch": "main"})
    for number in OUT_OF_RANGE:
        for method, suffix in [
            ("GET", ""),
            ("PUT", "/cancel"),
            ("PUT", "/rebuild"),
            ("GET", "/meta-data"),
            ("GET", "/annotations"),
            ("GET", "/artifacts"),
        ]:
            response = client.request(method, f"{BUILDS}/{number}{suffix}")
            assert response.status_code == 404, (number, suffix)
            assert response.json() == {"message": "No build found"}, (number, suffix)
        graphql = client.post(
            "/v1", json={"query": f'{{ build(slug: "acme/p/{number}") {{ number }} }}'}
        )
        assert graphql.json() == {"data": {"build": None}}, number
    assert client.get(f"{BUILDS}/1").json()["state"] == "scheduled"
