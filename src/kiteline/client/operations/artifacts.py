"""Artifacts of a build or a job: list, and download to disk with their SHA-1 checked."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urljoin

from kiteline.client._effects import Op, Stream, request, send
from kiteline.client._pages import collect, paginate
from kiteline.client.config import ClientConfig
from kiteline.client.errors import ApiError, ChecksumMismatch, KitelineClientError
from kiteline.client.models import Artifact
from kiteline.client.operations.builds import build_url

#: The API answers 302 to a signed URL, which may redirect again (S3 and its proxies).
MAX_REDIRECTS = 5


def artifacts(
    config: ClientConfig,
    pipeline: str,
    number: int,
    *,
    job_id: str | None = None,
    org: str | None = None,
    state: str | None = None,
    path: str | None = None,
    per_page: int | None = None,
) -> Stream[Artifact]:
    """The build's artifacts, or one job's; `path` is an exact path or a `*` glob."""
    yield from paginate(
        config,
        _list_url(config, org, pipeline, number, job_id),
        Artifact,
        {"state": state, "path": path},
        per_page,
    )


def _list_url(
    config: ClientConfig, org: str | None, pipeline: str, number: int, job_id: str | None
) -> str:
    job = ("jobs", job_id) if job_id is not None else ()
    return build_url(config, org, pipeline, number, *job, "artifacts")


class _ArtifactFile:
    """The bytes of one download: written beside `path` under a temporary name, hashed on the
    way, and moved into place only when complete and matching."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.part")
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.partial.open("wb")
        return self._file

    def write(self, chunk: bytes) -> None:
        self._open().write(chunk)
        self.sha1.update(chunk)

    def finish(self, expected_sha1: str | None) -> None:
        self._open().close()
        actual = self.sha1.hexdigest()
        if expected_sha1 and expected_sha1.lower() != actual:
            self.partial.unlink(missing_ok=True)
            raise ChecksumMismatch(self.path, expected=expected_sha1, actual=actual)
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self.partial.unlink(missing_ok=True)


def download_artifact(
    config: ClientConfig, artifact: Artifact, dest: str | os.PathLike[str]
) -> Op[Path]:
    """Download one artifact to the file `dest`, streaming it to disk, and return the path.

    The API's download URL answers with a redirect to a signed URL, which is followed without
    the token when it is on another host. The bytes must match the `sha1sum` the API reports,
    else `ChecksumMismatch` is raised and nothing is left behind.
    """
    if not artifact.download_url:
        raise KitelineClientError(f"artifact {artifact.id} has no download_url")
    file = _ArtifactFile(Path(dest))
    try:
        url = config.on_api_origin(artifact.download_url)
        for _ in range(MAX_REDIRECTS + 1):
            response = yield from send(
                config, request(config, "GET", url, accept="*/*", sink=file), redirects=True
            )
            if not response.is_redirect:
                break
            url = urljoin(str(response.url), response.headers["location"])
        else:
            raise ApiError(
                response.status_code,
                f"More than {MAX_REDIRECTS} redirects downloading artifact {artifact.id}",
                method="GET",
                url=url,
            )
        file.finish(artifact.sha1sum)
    except BaseException:
        file.discard()
        raise
    return file.path


#: Control characters (a NUL can't be in a file name; others make names that lie on screen)
#: and drive letters (`C:/…` is absolute on Windows).
_UNWRITABLE = re.compile(r"[\x00-\x1f\x7f]|^[A-Za-z]:")


def artifact_destination(dest: Path, artifact: Artifact) -> Path:
    """Where an artifact goes under `dest`: at its path, never outside `dest`."""
    relative = PurePosixPath(artifact.path)
    if _UNWRITABLE.search(artifact.path):
        raise KitelineClientError(
            f"refusing to write artifact {artifact.id} at {artifact.path!r}: not a file name "
            "this system can hold; choose others with --pattern"
        )
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise KitelineClientError(
            f"refusing to write artifact {artifact.id} at {artifact.path!r}: outside {dest}"
        )
    return dest.joinpath(*relative.parts)


def download_artifacts(
    config: ClientConfig,
    pipeline: str,
    number: int,
    pattern: str = "*",
    dest: str | os.PathLike[str] = ".",
    *,
    job_id: str | None = None,
    org: str | None = None,
) -> Op[list[Path]]:
    """Download the build's (or one job's) uploaded artifacts whose path matches `pattern`
    (a glob where `*` also crosses `/`) into `dest`, keeping their paths; returns the files
    written. Artifacts still uploading, failed or deleted are left out."""
    url = _list_url(config, org, pipeline, number, job_id)
    found: list[Artifact] = yield from collect(config, url, Artifact, {})
    chosen = [a for a in found if a.state == "finished" and fnmatch.fnmatchcase(a.path, pattern)]
    # Every destination is checked before the first byte is written: an odd path stops the
    # download with nothing half done.
    targets = [artifact_destination(Path(dest), artifact) for artifact in chosen]
    written = []
    for artifact, target in zip(chosen, targets, strict=True):
        written.append((yield from download_artifact(config, artifact, target)))
    return written
