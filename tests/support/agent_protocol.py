"""A tiny scripted client of the /v3 agent protocol, for driving the server in API tests."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.live_server import LiveServer, pipeline_with_a_build


def upload_to_the_server(
    instructions: dict[str, Any], content: bytes, filename: str = "dist/app.tar.gz"
) -> httpx.Response:
    """An artifact's upload as buildkite-agent sends it to a server-signed URL: the URL with its
    path replaced by action.path (query kept), a multipart form with the file under
    action.file_input, and no Authorization header."""
    action = instructions["action"]
    url = urlsplit(action["url"])._replace(path=action["path"]).geturl()
    return httpx.request(action["method"], url, files={action["file_input"]: (filename, content)})


@dataclass
class ScriptedAgent:
    http: httpx.Client
    access_token: str
    id: str
    name: str

    @classmethod
    def register(cls, base_url: str, registration_token: str, **fields: Any) -> ScriptedAgent:
        http = httpx.Client(base_url=f"{base_url}/v3", timeout=30)
        body = {"name": "scripted", "hostname": "test-host", "meta_data": [], **fields}
        response = http.post(
            "/register", json=body, headers={"Authorization": f"Token {registration_token}"}
        )
        response.raise_for_status()
        data = response.json()
        agent = cls(http, data["access_token"], data["id"], data["name"])
        agent.call("POST", "/connect").raise_for_status()
        return agent

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Token {token or self.access_token}",
            **kwargs.pop("headers", {}),
        }
        return self.http.request(method, path, headers=headers, **kwargs)

    def ping(self, wait: float = 0) -> dict[str, Any]:
        response = self.call("GET", "/ping", params={"wait": wait})
        response.raise_for_status()
        return response.json()

    def take_job(
        self, wait: float = 5, *, started_at: str = "2026-01-01T00:00:00.000000001Z"
    ) -> dict[str, Any]:
        """Ping until a job is assigned, then accept and start it (saying it started at
        `started_at`, in the agent's nanosecond form); returns the Job object."""
        job = self.ping(wait).get("job")
        assert job is not None, "no job was assigned"
        accepted = self.call("PUT", f"/jobs/{job['id']}/accept")
        accepted.raise_for_status()
        body = accepted.json()
        started = self.call(
            "PUT",
            f"/jobs/{body['id']}/start",
            token=body["token"],
            json={"started_at": started_at},
        )
        started.raise_for_status()
        return body

    def log(self, job: dict[str, Any], sequence: int, offset: int, data: bytes) -> httpx.Response:
        return self.call(
            "POST",
            f"/jobs/{job['id']}/chunks",
            token=job["token"],
            params={"sequence": sequence, "offset": offset, "size": len(data)},
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            content=gzip.compress(data),
        )

    def finish(self, job: dict[str, Any], exit_status: str, **fields: Any) -> httpx.Response:
        return self.call(
            "PUT",
            f"/jobs/{job['id']}/finish",
            token=job["token"],
            json={"exit_status": exit_status, "chunks_failed_count": 0, **fields},
        )

    def pass_a_job(self) -> dict[str, Any]:
        """Take the next job and finish it with exit status 0; the job as it was taken."""
        job = self.take_job()
        finished = self.finish(job, "0")
        assert finished.status_code == 200, finished.text
        return job

    def declare_artifact(
        self,
        job: dict[str, Any],
        content: bytes,
        *,
        path: str = "dist/app.tar.gz",
        batch: str | None = None,
        **fields: Any,
    ) -> tuple[str, dict[str, Any]]:
        """POST jobs/{id}/artifacts as buildkite-agent does: one artifact of `content` at
        `path`, with its SHA-1 and SHA-256 unless `fields` says otherwise (a None
        value leaves a field out), in batch `batch` when given; its id and its upload
        instructions."""
        artifact = {
            "path": path,
            "absolute_path": f"/tmp/x/{path}",
            "glob_path": path.rpartition("/")[0] + "/*",
            "file_size": len(content),
            "sha1sum": hashlib.sha1(content).hexdigest(),
            "sha256sum": hashlib.sha256(content).hexdigest(),
            **fields,
        }
        body: dict[str, Any] = {
            "artifacts": [{name: value for name, value in artifact.items() if value is not None}],
            "upload_destination": "",
        }
        if batch is not None:
            body["id"] = batch
        declared = self.call("POST", f"/jobs/{job['id']}/artifacts", token=job["token"], json=body)
        assert declared.status_code == 200, declared.text
        (artifact_id,) = declared.json()["artifact_ids"]
        return artifact_id, declared.json()["per_artifact_instructions"][artifact_id]

    def finish_artifact(self, job: dict[str, Any], artifact_id: str) -> httpx.Response:
        """PUT jobs/{id}/artifacts: the artifact's upload finished."""
        return self.call(
            "PUT",
            f"/jobs/{job['id']}/artifacts",
            token=job["token"],
            json={"artifacts": [{"id": artifact_id, "state": "finished"}]},
        )

    def upload_pipeline(
        self, job: dict[str, Any], pipeline: dict[str, Any], **fields: Any
    ) -> httpx.Response:
        """POST jobs/{id}/pipelines as `buildkite-agent pipeline upload` does: `pipeline` under
        a new upload UUID, with `fields` beside it (`replace=True`)."""
        return self.call(
            "POST",
            f"/jobs/{job['id']}/pipelines",
            token=job["token"],
            json={"uuid": str(uuid.uuid4()), "pipeline": pipeline, **fields},
        )


def running_job(
    server: LiveServer, configuration: str
) -> tuple[httpx.Client, ScriptedAgent, dict[str, Any]]:
    """A new organization `acme`'s pipeline P of `configuration` with build 1, and its first
    job taken and started by a new scripted agent: the member's API client, the agent and the
    job."""
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    pipeline_with_a_build(client, configuration)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    return client, agent, agent.take_job()
