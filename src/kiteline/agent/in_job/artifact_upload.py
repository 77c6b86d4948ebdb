"""`artifact upload`: find files by glob, register them in batches, send each file's bytes
where the server says, then report each artifact finished or failed."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field

from kiteline.agent.api import (
    IN_JOB,
    USER_AGENT,
    AgentApi,
    ApiError,
    ApiResponse,
    decode,
    path_id,
    send_with_retries,
    utc_timestamp,
)
from kiteline.agent.in_job.context import InJobError, JobEnvironment, job_api

GLOB_SEPARATOR = ";"
BATCH_SIZE = 30
UPLOADS_IN_FLIGHT = 4
PATH_PLACEHOLDER = "${artifact:path}"
READ_SIZE = 1024 * 1024

Say = Callable[[str], None]


class NoFilesMatched(InJobError):
    """Nothing to upload: the automatic artifact phase warns, the command fails."""


@dataclass(frozen=True)
class LocalArtifact:
    path: str
    """Relative to the working directory, with `/` separators: the name the build shows."""
    absolute_path: Path
    glob_path: str
    file_size: int
    sha1sum: str
    sha256sum: str
    md5sum: str
    """Kiteline's own: with S3, the server has S3 check the upload against it (Content-MD5)."""


class UploadAction(ApiResponse):
    url: str
    method: str = "POST"
    path: str = ""
    file_input: str = "file"


class UploadInstructions(ApiResponse):
    action: UploadAction
    data: dict[str, Any] = Field(default_factory=dict)


class CreatedBatch(ApiResponse):
    artifact_ids: list[str]
    upload_instructions: UploadInstructions | None = None
    per_artifact_instructions: dict[str, UploadInstructions] = Field(default_factory=dict)


async def upload_artifacts(
    env: JobEnvironment,
    globs: str,
    *,
    cwd: Path,
    say: Say,
    destination: str = "",
    job_id: str | None = None,
) -> list[LocalArtifact]:
    """Upload every file matching the `;`-separated `globs` (relative to `cwd`, `**` allowed)."""
    if destination:
        raise InJobError(
            f"Uploading artifacts to {destination} is not supported: Kiteline keeps artifacts "
            "on its server. Leave the destination and BUILDKITE_ARTIFACT_UPLOAD_DESTINATION empty"
        )
    job = env.job_id(job_id)
    artifacts = await asyncio.to_thread(collect_artifacts, globs, cwd)
    if not artifacts:
        raise NoFilesMatched(f"No files matched {globs!r} in {cwd}")
    say(f"Found {len(artifacts)} file{'s' if len(artifacts) != 1 else ''} matching {globs!r}")
    failed: list[str] = []
    async with job_api(env) as api:
        for batch in _batches(artifacts):
            failed += await _upload_batch(api, job, batch, say)
    if failed:
        raise InJobError(
            f"{len(failed)} of {len(artifacts)} artifacts could not be uploaded: "
            f"{', '.join(failed)}"
        )
    return artifacts


def collect_artifacts(globs: str, cwd: Path) -> list[LocalArtifact]:
    """The files (never directories) the globs match, each once, in path order, hashed."""
    found: dict[str, tuple[str, Path]] = {}
    for pattern in (part.strip() for part in globs.split(GLOB_SEPARATOR)):
        if not pattern:
            continue
        for match in sorted(glob.glob(pattern, root_dir=cwd, recursive=True)):
            absolute = Path(os.path.abspath(cwd / match))
            if absolute.is_file():
                found.setdefault(str(absolute), (pattern, absolute))
    artifacts = [_hashed(pattern, absolute, cwd) for pattern, absolute in found.values()]
    return sorted(artifacts, key=lambda artifact: artifact.path)


def _hashed(pattern: str, absolute: Path, cwd: Path) -> LocalArtifact:
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with absolute.open("rb") as file:
        while chunk := file.read(READ_SIZE):
            sha1.update(chunk)
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    relative = os.path.relpath(absolute, cwd)
    # A file outside the working directory keeps its absolute path, minus the leading `/`.
    path = str(absolute).lstrip("/") if relative.startswith("..") else relative
    return LocalArtifact(
        path=Path(path).as_posix(),
        absolute_path=absolute,
        glob_path=pattern,
        file_size=size,
        sha1sum=sha1.hexdigest(),
        sha256sum=sha256.hexdigest(),
        md5sum=md5.hexdigest(),
    )


def _batches(artifacts: list[LocalArtifact]) -> Iterator[list[LocalArtifact]]:
    iterator = iter(artifacts)
    while batch := list(itertools.islice(iterator, BATCH_SIZE)):
        yield batch


async def _upload_batch(
    api: AgentApi, job_id: str, batch: list[LocalArtifact], say: Say
) -> list[str]:
    """Register, transfer and settle one batch; the paths that failed."""
    created_at = utc_timestamp()
    body = {
        "id": str(uuid.uuid4()),
        "artifacts": [
            {
                "id": "",
                "path": artifact.path,
                "absolute_path": str(artifact.absolute_path),
                "glob_path": artifact.glob_path,
                "file_size": artifact.file_size,
                "sha1sum": artifact.sha1sum,
                "sha256sum": artifact.sha256sum,
                "md5sum": artifact.md5sum,
                "job_id": job_id,
                "created_at": created_at,
            }
            for artifact in batch
        ],
        "upload_destination": "",
    }
    scope = f"jobs/{path_id(job_id)}/artifacts"
    created = decode(CreatedBatch, await api.call("POST", scope, IN_JOB, json=body))
    if len(created.artifact_ids) != len(batch):
        raise InJobError(
            f"The server registered {len(created.artifact_ids)} artifacts "
            f"for a batch of {len(batch)}"
        )
    slots = asyncio.Semaphore(UPLOADS_IN_FLIGHT)

    async def upload(artifact: LocalArtifact, artifact_id: str) -> bool:
        instructions = created.per_artifact_instructions.get(
            artifact_id, created.upload_instructions
        )
        async with slots:
            say(f"Uploading artifact {artifact.path} ({artifact.file_size} bytes)")
            try:
                if instructions is None:
                    raise InJobError("the server gave no upload instructions for it")
                await _transfer(api.http, artifact, instructions)
            except (ApiError, InJobError, OSError) as error:
                say(f"⚠️ Warning: Could not upload {artifact.path}: {error}")
                return False
        return True

    results = await asyncio.gather(
        *(upload(artifact, id_) for artifact, id_ in zip(batch, created.artifact_ids, strict=True))
    )
    states = [
        {"id": artifact_id, "state": "finished" if ok else "error"}
        for artifact_id, ok in zip(created.artifact_ids, results, strict=True)
    ]
    await api.call("PUT", scope, IN_JOB, json={"artifacts": states})
    return [artifact.path for artifact, ok in zip(batch, results, strict=True) if not ok]


async def _transfer(
    http: httpx.AsyncClient, artifact: LocalArtifact, instructions: UploadInstructions
) -> None:
    """A multipart form to the signed URL (its path swapped for `action.path`), with no
    Authorization header: the URL alone authorises it."""
    action = instructions.action
    url = httpx.URL(action.url)
    if action.path:
        url = url.copy_with(path=action.path)
    fields = {
        name: str(value).replace(PATH_PLACEHOLDER, artifact.path)
        for name, value in instructions.data.items()
    }

    async def send(attempt: int) -> httpx.Response:
        with artifact.absolute_path.open("rb") as file:
            return await http.request(
                action.method,
                url,
                data=fields,
                files={action.file_input: (artifact.path, file)},
                headers={"User-Agent": USER_AGENT},
                timeout=None,
            )

    # The query holds the URL's signature: errors name the path only.
    await send_with_retries(IN_JOB, f"{action.method} {url.path}", send)
