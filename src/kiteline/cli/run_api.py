"""The REST calls `kiteline run` makes to its embedded server, in one class (an SDK can take
its place)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

BUILD_PARAMS = {"include_retried_jobs": "true", "exclude_pipeline": "true"}
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


class ApiError(Exception):
    """A REST error answer: its status, message and `{field, code}` errors."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]]) -> None:
        details = "; ".join(f"{e.get('field')} {e.get('code')}" for e in errors)
        super().__init__(f"{message}: {details}" if details else message)
        self.status = status
        self.errors = errors


class RunApi:
    """One organization's pipelines, builds, jobs and artifacts over /v2."""

    def __init__(self, base_url: str, *, token: str, org: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=f"{base_url}/v2/organizations/{org}/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_pipeline(
        self, *, name: str, configuration: str, repository: str
    ) -> dict[str, Any]:
        return await self._json(
            "POST",
            "pipelines",
            json={"name": name, "configuration": configuration, "repository": repository},
        )

    async def create_build(self, pipeline: str, **fields: Any) -> dict[str, Any]:
        return await self._json("POST", f"pipelines/{pipeline}/builds", json=fields)

    async def build(self, pipeline: str, number: int) -> dict[str, Any]:
        return await self._json("GET", f"pipelines/{pipeline}/builds/{number}", params=BUILD_PARAMS)

    async def cancel(self, pipeline: str, number: int) -> None:
        try:
            await self._json("PUT", f"pipelines/{pipeline}/builds/{number}/cancel")
        except ApiError as error:
            if error.status != 422:  # it finished meanwhile
                raise

    async def log(self, job: dict[str, Any]) -> bytes:
        response = await self._http.get(job["raw_log_url"])
        _check(response)
        return response.content

    async def unblock(self, job: dict[str, Any], fields: dict[str, Any]) -> None:
        await self._json("PUT", job["unblock_url"], json={"fields": fields})

    async def artifacts(self, pipeline: str, number: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = f"pipelines/{pipeline}/builds/{number}/artifacts?per_page=100"
        while url:
            response = await self._http.get(url)
            _check(response)
            found.extend(response.json())
            url = response.links.get("next", {}).get("url")
        return found

    async def download(self, artifact: dict[str, Any], destination: Path) -> None:
        """Save an artifact (REST answers 302 to a signed URL) and check its sha1sum."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        digest = hashlib.sha1(usedforsecurity=False)
        try:
            async with self._http.stream(
                "GET", artifact["download_url"], follow_redirects=True
            ) as response:
                if response.is_error:
                    await response.aread()
                    _check(response)
                with partial.open("wb") as file:
                    async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                        digest.update(chunk)
                        file.write(chunk)
            if artifact.get("sha1sum") and digest.hexdigest() != artifact["sha1sum"]:
                raise ApiError(
                    200,
                    f"{artifact['path']} downloaded with sha1 {digest.hexdigest()}, "
                    f"but the server recorded {artifact['sha1sum']}",
                    [],
                )
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._http.request(method, url, **kwargs)
        _check(response)
        body: dict[str, Any] = response.json()
        return body


def _check(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    raise ApiError(
        response.status_code,
        str(body.get("message") or f"HTTP {response.status_code}"),
        list(body.get("errors") or []),
    )
