"""Build meta-data and annotations, over REST and from inside a job through /v3."""

from __future__ import annotations

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer, pipeline_with_a_build

BUILD = "/v2/organizations/acme/pipelines/p/builds/1"


def _running_job(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent, dict]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    pipeline_with_a_build(client, "steps:\n  - command: echo hi\n", meta_data={"release": "v1"})
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    return client, agent, agent.take_job()


def test_meta_data_over_rest(server: LiveServer) -> None:
    client, _, _ = _running_job(server)
    assert client.get(f"{BUILD}/meta-data").json() == {"release": "v1"}
    created = client.post(f"{BUILD}/meta-data", json={"key": "version", "value": "1.2.3"})
    assert created.status_code == 201
    assert created.json() == {"key": "version", "value": "1.2.3"}
    assert client.get(f"{BUILD}/meta-data/version").json() == {"key": "version", "value": "1.2.3"}
    assert client.get(f"{BUILD}/meta-data/missing").status_code == 404
    client.post(f"{BUILD}/meta-data", json={"key": "deploy/target", "value": "eu"})
    for path in ("deploy/target", "deploy%2Ftarget"):
        got = client.get(f"{BUILD}/meta-data/{path}")
        assert got.json() == {"key": "deploy/target", "value": "eu"}
    assert client.get(BUILD).json()["meta_data"] == {
        "release": "v1",
        "version": "1.2.3",
        "deploy/target": "eu",
    }
    blank = client.post(f"{BUILD}/meta-data", json={"key": "k", "value": " "})
    assert blank.status_code == 422


def test_meta_data_from_a_job(server: LiveServer) -> None:
    client, agent, job = _running_job(server)
    token = job["token"]
    base = f"/jobs/{job['id']}/data"
    assert agent.call(
        "POST", f"{base}/set", token=token, json={"key": "a", "value": "1"}
    ).is_success
    batch = {"items": [{"key": "b", "value": "2"}, {"key": "c", "value": "3"}]}
    assert agent.call("POST", f"{base}/set-batch", token=token, json=batch).is_success
    got = agent.call("POST", f"{base}/get", token=token, json={"key": "a"})
    assert got.json() == {"key": "a", "value": "1"}
    missing = agent.call("POST", f"{base}/get", token=token, json={"key": "zzz"})
    assert missing.status_code == 404
    exists = agent.call("POST", f"{base}/exists", token=token, json={"key": "zzz"})
    assert (exists.status_code, exists.json()) == (200, {"exists": False})
    keys = agent.call("POST", f"{base}/keys", token=token)
    assert keys.json() == ["a", "b", "c", "release"]
    build_id = client.get(BUILD).json()["id"]
    by_build = agent.call("POST", f"/builds/{build_id}/data/get", token=token, json={"key": "b"})
    assert by_build.json() == {"key": "b", "value": "2"}


def test_annotations_over_rest_replace_append_and_delete(server: LiveServer) -> None:
    client, _, _ = _running_job(server)
    url = f"{BUILD}/annotations"
    first = client.post(
        url, json={"body": "Deployment **complete**!", "style": "success", "context": "deploy"}
    )
    assert first.status_code == 201
    body = first.json()
    assert (body["context"], body["style"], body["scope"]) == ("deploy", "success", "build")
    assert body["body_html"] == "<p>Deployment <strong>complete</strong>!</p>\n"
    client.post(url, json={"body": " Again.", "context": "deploy", "append": True})
    client.post(url, json={"body": "Other", "style": "info"})
    listed = client.get(url + "/").json()
    assert [(a["context"], a["body_html"]) for a in listed] == [
        ("deploy", "<p>Deployment <strong>complete</strong>! Again.</p>\n"),
        ("default", "<p>Other</p>\n"),
    ]
    bad = client.post(url, json={"body": "x", "style": "purple"})
    assert bad.status_code == 422
    assert client.delete(f"{url}/deploy").status_code == 204
    assert client.delete(f"{url}/{listed[1]['id']}").status_code == 204
    assert client.get(url).json() == []
    assert client.delete(f"{url}/deploy").json() == {"message": "No annotation found"}


def test_annotations_from_a_job(server: LiveServer) -> None:
    client, agent, job = _running_job(server)
    path = f"/jobs/{job['id']}/annotations"
    made = agent.call(
        "POST", path, token=job["token"], json={"body": "from job", "style": "warning"}
    )
    assert made.is_success
    job_scoped = agent.call(
        "POST", path, token=job["token"], json={"body": "mine", "context": "x", "scope": "job"}
    )
    assert job_scoped.is_success
    annotations = client.get(f"{BUILD}/annotations", params={"scope": "all"}).json()
    assert sorted((a["context"], a["scope"], a["job_id"]) for a in annotations) == [
        ("default", "build", None),
        ("x", "job", job["id"]),
    ]
    removed = agent.call("DELETE", f"{path}/default", token=job["token"])
    assert removed.status_code == 204
    assert [a["context"] for a in client.get(f"{BUILD}/annotations").json()] == []
