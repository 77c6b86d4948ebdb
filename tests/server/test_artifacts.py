"""Artifacts: created by a job over /v3, uploaded to a signed URL, listed and downloaded over
REST through a 302 to a signed URL that needs no Authorization header."""

from __future__ import annotations

import hashlib

import httpx

from tests.support.agent_protocol import ScriptedAgent, running_job, upload_to_the_server
from tests.support.live_server import LiveServer

BUILD = "/v2/organizations/acme/pipelines/p/builds/1"
CONTENT = b"artifact bytes\n" * 1000


def _uploaded(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent, dict, str]:
    client, agent, job = running_job(server, "steps:\n  - key: make\n    command: make\n")
    artifact_id, instructions = agent.declare_artifact(job, CONTENT, batch="batch-1")
    upload = upload_to_the_server(instructions, CONTENT)
    assert upload.status_code == 201, upload.text
    assert agent.finish_artifact(job, artifact_id).status_code == 200
    return client, agent, job, artifact_id


def test_listed_with_buildkites_fields(server: LiveServer) -> None:
    client, _, job, artifact_id = _uploaded(server)
    (artifact,) = client.get(f"{BUILD}/artifacts/").json()
    url = f"{server.url}{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}"
    assert artifact == {
        "id": artifact_id,
        "graphql_id": artifact["graphql_id"],
        "job_id": job["id"],
        "url": url,
        "download_url": f"{url}/download",
        "state": "finished",
        "path": "dist/app.tar.gz",
        "dirname": "dist",
        "filename": "app.tar.gz",
        "mime_type": "application/x-tar",
        "file_size": len(CONTENT),
        "sha1sum": hashlib.sha1(CONTENT).hexdigest(),
        "glob_path": None,
        "original_path": None,
    }
    assert client.get(f"{BUILD}/jobs/{job['id']}/artifacts").json() == [artifact]
    assert client.get(f"{BUILD}/artifacts", params={"path": "dist/*.gz"}).json() == [artifact]
    assert client.get(f"{BUILD}/artifacts", params={"path": "*.zip"}).json() == []
    assert client.get(f"{BUILD}/artifacts", params={"state": "weird"}).status_code == 400


def test_download_is_a_302_to_a_url_without_auth(server: LiveServer) -> None:
    client, _, job, artifact_id = _uploaded(server)
    url = f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}/download"
    redirect = client.get(url)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert redirect.json() == {"url": location}
    fetched = httpx.get(location)
    assert fetched.status_code == 200
    assert fetched.content == CONTENT
    assert fetched.headers["content-type"] == "application/x-tar"
    tampered = httpx.get(location.replace("signature=", "signature=0"))
    assert tampered.status_code == 403


def test_search_from_a_job_returns_signed_urls(server: LiveServer) -> None:
    client, agent, job, artifact_id = _uploaded(server)
    build_id = client.get(BUILD).json()["id"]
    found = agent.call(
        "GET",
        f"/builds/{build_id}/artifacts/search",
        token=job["token"],
        params={"query": "dist/*", "state": "finished", "scope": "make"},
    ).json()
    assert [(a["id"], a["path"], a["sha256sum"]) for a in found] == [
        (artifact_id, "dist/app.tar.gz", hashlib.sha256(CONTENT).hexdigest())
    ]
    assert httpx.get(found[0]["url"]).content == CONTENT


def test_upload_with_wrong_bytes_is_refused(server: LiveServer) -> None:
    client, agent, job = running_job(server, "steps:\n  - command: make\n")
    body = agent.call(
        "POST",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"artifacts": [{"path": "a.txt", "file_size": 3, "sha1sum": "0" * 40}]},
    ).json()
    action = body["per_artifact_instructions"][body["artifact_ids"][0]]["action"]
    upload = httpx.post(action["url"], files={"file": ("a.txt", b"abc")})
    assert upload.status_code == 422
    assert "don't match" in upload.json()["message"]
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "new"


def test_delete_removes_the_artifact(server: LiveServer) -> None:
    client, _, job, artifact_id = _uploaded(server)
    url = f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}"
    assert client.delete(url).status_code == 204
    assert client.get(url).json() == {"message": "No artifact found"}
    assert client.get(f"{BUILD}/artifacts").json() == []
