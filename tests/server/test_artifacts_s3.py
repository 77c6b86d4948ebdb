"""Artifacts in S3 (KITELINE_BLOB_URL=s3://…, against moto's S3 server): the agent is told to
POST the bytes straight to a pre-signed S3 form, the server checks what arrived when the
agent says it finished, and every download is a 302 to a pre-signed S3 GET.

Two ways, by what the agent declared (docs/decisions/0036): with an `md5sum` (Kiteline's own
agent) the form pins `Content-MD5` and goes straight to the artifact's key, checked on
"finished" by S3's ETag; without (buildkite-agent: SHA-1 and SHA-256 only) the upload goes
under `incoming/` and S3 computes a SHA-256 by copying it to the artifact's key."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from contextlib import closing
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest

from kiteline.server.kit.signing import UrlSigner
from tests.support.agent_protocol import ScriptedAgent, running_job
from tests.support.live_server import LiveServer, free_port
from tests.support.s3 import S3Service
from tests.support.web import give_password, signed_in

BUILD = "/v2/organizations/acme/pipelines/p/builds/1"
CONTENT = b"artifact bytes in a bucket\n" * 4000


def _job(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent, dict[str, Any]]:
    return running_job(server, "steps:\n  - key: make\n    command: make\n")


class Scene(NamedTuple):
    """A server keeping its blobs under `blob_url` in moto's S3, and a job running there."""

    blob_url: str
    server: LiveServer
    client: httpx.Client
    agent: ScriptedAgent
    job: dict[str, Any]


@pytest.fixture
def scene(make_server: Callable[..., LiveServer], s3: S3Service) -> Scene:
    blob_url = s3.blob_url()
    server = make_server(blob_url=blob_url)
    return Scene(blob_url, server, *_job(server))


def _post_as_buildkite_agent(instructions: dict[str, Any], content: bytes) -> httpx.Response:
    """buildkite-agent's form upload (internal/artifact/bk_uploader.go): the URL with its path
    replaced by action.path, the data fields (in map order: any), then the file last under
    action.file_input, a Content-Length, and no Authorization header."""
    action = instructions["action"]
    boundary = "kiteline-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in reversed(list(instructions["data"].items()))
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{action["file_input"]}"; '
        f'filename="dist/app.tar.gz"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    url = urlsplit(action["url"])._replace(path=action["path"]).geturl()
    return httpx.request(
        action["method"],
        url,
        content=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def _assert_listed_as_finished(client: httpx.Client) -> None:
    (listed,) = client.get(f"{BUILD}/artifacts").json()
    assert (listed["state"], listed["file_size"], listed["sha1sum"]) == (
        "finished",
        len(CONTENT),
        hashlib.sha1(CONTENT).hexdigest(),
    )


TAMPERED = CONTENT[:-1] + b"?"  # the same size: only a digest can tell


def _assert_refused_as_not_matching(
    scene: Scene,
    s3: S3Service,
    artifact_id: str,
    got: str = f"sha256 {hashlib.sha256(TAMPERED).hexdigest()}",
    expected: str = f"sha256 {hashlib.sha256(CONTENT).hexdigest()}",
) -> None:
    """Reporting the artifact finished is a 422 naming the digests (`got` what S3 holds,
    `expected` what was declared: S3's SHA-256 of TAMPERED and the declared one of CONTENT
    unless said otherwise); the artifact is an error and nothing stays in the bucket; a second
    report changes nothing."""
    blob_url, _, client, agent, job = scene
    refused = agent.finish_artifact(job, artifact_id)
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "Artifact uploads failed their check: dist/app.tar.gz: uploaded bytes don't "
        f"match the artifact: got {len(CONTENT)} bytes with {got}, expected "
        f"{len(CONTENT)} bytes with {expected}"
    }
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "error"
    assert s3.keys(blob_url) == []
    assert agent.finish_artifact(job, artifact_id).status_code == 200
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "error"


def test_upload_goes_to_s3_and_downloads_redirect_there(scene: Scene, s3: S3Service) -> None:
    blob_url, server, client, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(job, CONTENT)

    action = instructions["action"]
    assert action["url"].startswith(f"{s3.endpoint}/{s3.bucket}")
    assert (action["method"], action["path"], action["file_input"]) == (
        "POST",
        f"/{s3.bucket}",
        "file",
    )
    build_id = client.get(BUILD).json()["id"]
    org_id = server.admin(_org_id)
    key = f"artifacts/{org_id}/{build_id}/{artifact_id}"
    # Registered as buildkite-agent does (SHA-1 and SHA-256, no MD5): the fallback path, an
    # upload under incoming/ that S3 copies to the artifact's key with a SHA-256.
    assert instructions["data"]["key"] == blob_url.split("/", 3)[3] + f"/incoming/{key}"
    assert instructions["data"]["Content-Type"] == "application/x-tar"
    assert "Content-MD5" not in instructions["data"]

    upload = _post_as_buildkite_agent(instructions, CONTENT)
    assert upload.status_code == 204, upload.text
    assert s3.keys(blob_url) == [f"incoming/{key}"]
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "new"

    assert agent.finish_artifact(job, artifact_id).status_code == 200
    # Checked and moved where downloads read it; the upload URL can no longer change it.
    assert s3.keys(blob_url) == [key]
    assert s3.get(blob_url, key) == CONTENT
    _assert_listed_as_finished(client)

    redirect = client.get(f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}/download")
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert redirect.json() == {"url": location}
    assert location.startswith(f"{s3.endpoint}/{s3.bucket}/{blob_url.split('/', 3)[3]}/{key}?")
    assert "X-Amz-Signature=" in location
    fetched = httpx.get(location)
    assert fetched.status_code == 200
    assert fetched.content == CONTENT
    assert fetched.headers["content-type"] == "application/x-tar"
    assert fetched.headers["content-disposition"] == (
        "attachment; filename=\"app.tar.gz\"; filename*=UTF-8''app.tar.gz"
    )

    found = agent.call(
        "GET",
        f"/builds/{build_id}/artifacts/search",
        token=job["token"],
        params={"query": "dist/*", "state": "finished"},
    ).json()
    assert [(a["id"], a["sha256sum"]) for a in found] == [
        (artifact_id, hashlib.sha256(CONTENT).hexdigest())
    ]
    assert found[0]["url"].startswith(f"{s3.endpoint}/{s3.bucket}/")
    assert httpx.get(found[0]["url"]).content == CONTENT

    # The server's own signed download URL (GraphQL's downloadURL) redirects there too.
    path = f"/v3/artifacts/{artifact_id}/download"
    signer = UrlSigner(server.app.state.secret_key)
    via = httpx.get(f"{server.url}{path}?{signer.query('GET', path, 60)}")
    assert via.status_code == 302
    assert httpx.get(via.headers["location"]).content == CONTENT

    deleted = client.delete(f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}")
    assert deleted.status_code == 204
    assert s3.keys(blob_url) == []


async def _org_id(session: Any) -> str:
    from kiteline.server.organizations.service import get_by_slug

    return str((await get_by_slug(session, "acme")).id)


def test_bytes_that_dont_match_make_the_artifact_an_error(scene: Scene, s3: S3Service) -> None:
    _, _, _, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(job, CONTENT)
    assert _post_as_buildkite_agent(instructions, TAMPERED).status_code == 204
    _assert_refused_as_not_matching(scene, s3, artifact_id)


def test_finished_without_an_upload_is_an_error(scene: Scene) -> None:
    _, _, client, agent, job = scene
    artifact_id, _ = agent.declare_artifact(job, CONTENT)
    refused = agent.finish_artifact(job, artifact_id)
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "Artifact uploads failed their check: dist/app.tar.gz: nothing was uploaded "
        "for it"
    }
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "error"


def test_the_server_takes_no_artifact_bytes_itself(scene: Scene) -> None:
    _, server, _, agent, job = scene
    artifact_id, _ = agent.declare_artifact(job, CONTENT)
    # Even with a URL the server signed itself (as it does for the filesystem store).
    path = f"/v3/artifacts/{artifact_id}/upload"
    signer = UrlSigner(server.app.state.secret_key)
    refused = httpx.post(
        f"{server.url}{path}?{signer.query('POST', path, 60)}", files={"file": ("a", CONTENT)}
    )
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "This server keeps artifacts in S3: upload to the URL in the artifact's "
        "upload instructions (POST jobs/{id}/artifacts), not to the server"
    }


def test_s3_out_of_reach_is_a_503_and_changes_nothing(
    make_server: Callable[..., LiveServer], s3: S3Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob_url = s3.blob_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    server = make_server(blob_url=blob_url)
    client, agent, job = _job(server)
    artifact_id, _ = agent.declare_artifact(job, CONTENT)  # signing needs no S3
    reported = agent.finish_artifact(job, artifact_id)
    assert reported.status_code == 503
    assert reported.json()["message"].startswith(
        "The artifact store (S3) could not be reached: Could not connect to the endpoint URL"
    )
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "new"
    deleted = client.delete(f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}")
    assert deleted.status_code == 503
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "new"


def test_the_web_uis_artifact_link_redirects_to_s3(scene: Scene, s3: S3Service) -> None:
    _, server, _, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(job, CONTENT)
    assert _post_as_buildkite_agent(instructions, CONTENT).status_code == 204
    assert agent.finish_artifact(job, artifact_id).status_code == 200
    (identity,) = server.identities
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as browser:
        path = f"/acme/p/builds/1/jobs/{job['id']}/artifacts/{artifact_id}"
        assert f'href="{path}"' in browser.get("/acme/p/builds/1").text
        redirect = browser.get(path)
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith(f"{s3.endpoint}/{s3.bucket}/")
    assert httpx.get(redirect.headers["location"]).content == CONTENT


def _md5(content: bytes) -> str:
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


def _key(server: LiveServer, client: httpx.Client, artifact_id: str) -> str:
    build_id = client.get(BUILD).json()["id"]
    return f"artifacts/{server.admin(_org_id)}/{build_id}/{artifact_id}"


def test_an_upload_declared_with_an_md5_goes_to_its_key_and_is_checked_by_the_etag(
    scene: Scene, s3: S3Service
) -> None:
    blob_url, server, client, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(job, CONTENT, md5sum=_md5(CONTENT).upper())
    key = _key(server, client, artifact_id)
    content_md5 = base64.b64encode(hashlib.md5(CONTENT, usedforsecurity=False).digest()).decode()
    data = instructions["data"]
    assert data["key"] == blob_url.split("/", 3)[3] + f"/{key}"  # no incoming/ step
    assert data["Content-MD5"] == content_md5
    conditions = json.loads(base64.b64decode(data["policy"]))["conditions"]
    assert {"Content-MD5": content_md5} in conditions
    assert ["content-length-range", len(CONTENT), len(CONTENT)] in conditions

    assert _post_as_buildkite_agent(instructions, CONTENT).status_code == 204
    assert s3.keys(blob_url) == [key]
    assert client.get(f"{BUILD}/artifacts").json()[0]["state"] == "new"
    # At its key but not yet checked: no download leads there (the server's own signed URL,
    # which refuses an artifact that isn't finished).
    early = client.get(f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}/download")
    assert early.status_code == 302
    assert early.headers["location"].startswith(
        f"{server.url}/v3/artifacts/{artifact_id}/download?"
    )
    refused = httpx.get(early.headers["location"])
    assert refused.status_code == 404
    assert refused.json() == {"message": "Artifact is new, not downloadable"}
    assert agent.finish_artifact(job, artifact_id).status_code == 200
    assert s3.keys(blob_url) == [key]
    _assert_listed_as_finished(client)
    redirect = client.get(f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}/download")
    assert httpx.get(redirect.headers["location"]).content == CONTENT


def test_bytes_that_dont_match_the_declared_md5_make_the_artifact_an_error(
    scene: Scene, s3: S3Service
) -> None:
    blob_url, server, client, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(job, CONTENT, md5sum=_md5(CONTENT))
    # AWS S3 refuses this form (BadDigest: the body's MD5 is not the policy's Content-MD5);
    # moto checks neither POST policies nor Content-MD5 and stores it. The ETag it computes
    # (the MD5 of what it stored) is what the server's check reads.
    assert _post_as_buildkite_agent(instructions, TAMPERED).status_code == 204
    assert (
        s3.client.head_object(
            Bucket=s3.bucket,
            Key=blob_url.split("/", 3)[3] + "/" + _key(server, client, artifact_id),
        )["ETag"]
        == f'"{_md5(TAMPERED)}"'
    )
    # Another ETag: S3's own SHA-256 of the object (a copy onto itself) decides.
    _assert_refused_as_not_matching(scene, s3, artifact_id)


def test_an_md5_alone_is_compared_with_the_etag(scene: Scene, s3: S3Service) -> None:
    _, _, _, agent, job = scene
    artifact_id, instructions = agent.declare_artifact(
        job, CONTENT, md5sum=_md5(CONTENT), sha1sum=None, sha256sum=None
    )
    assert _post_as_buildkite_agent(instructions, TAMPERED).status_code == 204
    _assert_refused_as_not_matching(
        scene, s3, artifact_id, f"ETag {_md5(TAMPERED)}", f"md5 {_md5(CONTENT)}"
    )


def test_an_etag_that_is_no_md5_falls_back_to_s3s_sha256(scene: Scene, s3: S3Service) -> None:
    """A multipart object's ETag (as an SSE-KMS or SSE-C object's) is not the MD5 of its
    bytes: the right bytes are still accepted, on S3's SHA-256 computed by a copy."""
    blob_url, server, client, agent, job = scene
    artifact_id, _ = agent.declare_artifact(job, CONTENT, md5sum=_md5(CONTENT))
    name = blob_url.split("/", 3)[3] + "/" + _key(server, client, artifact_id)
    started = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=name)
    part = s3.client.upload_part(
        Bucket=s3.bucket, Key=name, UploadId=started["UploadId"], PartNumber=1, Body=CONTENT
    )
    s3.client.complete_multipart_upload(
        Bucket=s3.bucket,
        Key=name,
        UploadId=started["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.client.head_object(Bucket=s3.bucket, Key=name)["ETag"].endswith('-1"')

    assert agent.finish_artifact(job, artifact_id).status_code == 200
    (listed,) = client.get(f"{BUILD}/artifacts").json()
    assert (listed["state"], listed["sha1sum"]) == ("finished", hashlib.sha1(CONTENT).hexdigest())
    assert s3.keys(blob_url) == [_key(server, client, artifact_id)]


def test_an_md5_that_is_not_one_is_refused(scene: Scene) -> None:
    _, _, client, agent, job = scene
    refused = agent.call(
        "POST",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"artifacts": [{"path": "a.txt", "file_size": 1, "md5sum": "not-an-md5"}]},
    )
    assert refused.status_code == 422
    assert refused.json() == {
        "message": "Validation Failed",
        "errors": [{"field": "artifacts[0].md5sum", "code": "must be 32 hexadecimal digits"}],
    }
    assert client.get(f"{BUILD}/artifacts").json() == []
