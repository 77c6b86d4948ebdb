"""`artifact download` and `artifact shasum`: find a build's artifacts by glob, fetch their
bytes (checked against the recorded checksums) or print a checksum."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import httpx

from kiteline.agent.api import (
    IN_JOB,
    USER_AGENT,
    AgentApi,
    ApiError,
    ApiResponse,
    decode,
    path_id,
    send_with_retries,
)
from kiteline.agent.in_job.context import InJobError

Say = Callable[[str], None]


class RemoteArtifact(ApiResponse):
    id: str
    path: str
    file_size: int = 0
    sha1sum: str | None = None
    sha256sum: str | None = None
    url: str = ""


async def search_artifacts(
    api: AgentApi, *, build_id: str, query: str, step: str | None
) -> list[RemoteArtifact]:
    """Finished artifacts of the build whose path matches `query`, of one step if given."""
    params = {"query": query, "state": "finished"}
    if step:
        params["scope"] = step
    response = await api.call(
        "GET", f"builds/{path_id(build_id)}/artifacts/search", IN_JOB, params=params
    )
    return decode(list[RemoteArtifact], response)


def single_artifact(artifacts: list[RemoteArtifact], query: str) -> RemoteArtifact:
    if not artifacts:
        raise InJobError(f"No artifacts match {query!r}")
    if len(artifacts) > 1:
        raise InJobError(
            f"{len(artifacts)} artifacts match {query!r}: be more specific, or use --step"
        )
    return artifacts[0]


def checksum(artifact: RemoteArtifact, *, sha256: bool) -> str:
    value = artifact.sha256sum if sha256 else artifact.sha1sum
    if not value:
        raise InJobError(f"The server has no {'sha256' if sha256 else 'sha1'} for {artifact.path}")
    return value


async def download_artifacts(
    api: AgentApi, artifacts: list[RemoteArtifact], *, destination: Path, say: Say
) -> list[Path]:
    """Each artifact to `destination/<path>`; every one is tried, then failures are raised."""
    written: list[Path] = []
    failed: list[str] = []
    for artifact in artifacts:
        say(f"Downloading {artifact.path} ({artifact.file_size} bytes)")
        try:
            written.append(await download_artifact(api.http, artifact, destination=destination))
        except (InJobError, ApiError, OSError) as error:
            say(f"⚠️ Warning: Could not download {artifact.path}: {error}")
            failed.append(artifact.path)
    if failed:
        raise InJobError(
            f"{len(failed)} of {len(artifacts)} artifacts could not be downloaded: "
            f"{', '.join(failed)}"
        )
    return written


async def download_artifact(
    http: httpx.AsyncClient, artifact: RemoteArtifact, *, destination: Path
) -> Path:
    """A plain GET of the artifact's URL (no Authorization), written only once its checksum
    matches: a corrupted download leaves nothing behind."""
    target = _target(destination, artifact.path)
    if not artifact.url:
        raise InJobError("the server gave no download URL")

    async def send(attempt: int) -> httpx.Response:
        request = http.build_request(
            "GET", artifact.url, headers={"User-Agent": USER_AGENT}, timeout=None
        )
        return await http.send(request, stream=True, follow_redirects=True)

    target.parent.mkdir(parents=True, exist_ok=True)
    response = await send_with_retries(IN_JOB, f"GET {artifact.path}", send)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        sha1, sha256 = hashlib.sha1(), hashlib.sha256()
        with os.fdopen(handle, "wb") as file:
            async for chunk in response.aiter_bytes():
                file.write(chunk)
                sha1.update(chunk)
                sha256.update(chunk)
        _verify(artifact, sha1=sha1.hexdigest(), sha256=sha256.hexdigest())
        os.replace(partial, target)
    except httpx.HTTPError as error:
        raise InJobError(f"the download broke off: {error}") from error
    finally:
        await response.aclose()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target


#: Control characters (a NUL can't be in a file name; others make names that lie on screen)
#: and drive letters (`C:/…` is absolute on Windows).
_UNWRITABLE = re.compile(r"[\x00-\x1f\x7f]|^[A-Za-z]:")


def _target(destination: Path, artifact_path: str) -> Path:
    path = PurePosixPath(artifact_path)
    if _UNWRITABLE.search(artifact_path):
        raise InJobError(f"its path {artifact_path!r} can't be a file name here")
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InJobError(f"its path {artifact_path!r} would land outside {destination}")
    return destination.joinpath(*path.parts)


def _verify(artifact: RemoteArtifact, *, sha1: str, sha256: str) -> None:
    """sha256 when the server recorded one, else sha1."""
    if artifact.sha256sum:
        expected, got, kind = artifact.sha256sum, sha256, "sha256"
    elif artifact.sha1sum:
        expected, got, kind = artifact.sha1sum, sha1, "sha1"
    else:
        return
    if got != expected.lower():
        raise InJobError(f"the downloaded bytes have {kind} {got}, expected {expected}")
