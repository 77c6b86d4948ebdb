"""A tiny scripted client of the /v3 agent protocol, for driving the server in API tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import httpx


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
