"""Artifacts: created in batches by jobs, uploaded through signed URLs, listed, deleted."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.artifacts.models import Artifact
from kiteline.server.blobs import BlobStore, DirectTransfers
from kiteline.server.builds import repository as builds
from kiteline.server.jobs.service import Job
from kiteline.server.kit.db import execute_core, get_or_not_found, utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable, ValidationFailed
from kiteline.server.kit.text import check_plain, relative_path

STATES = ("new", "error", "finished", "deleted", "expired")
MD5 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class NewArtifact:
    path: str
    file_size: int
    sha1sum: str | None = None
    sha256sum: str | None = None
    glob_path: str | None = None
    content_type: str | None = None
    upload_destination: str | None = None
    md5sum: str | None = None


def blob_key(artifact: Artifact) -> str:
    return f"artifacts/{artifact.organization_id}/{artifact.build_id}/{artifact.id}"


def upload_key(artifact: Artifact) -> str:
    """Where an agent uploads an artifact directly (S3). Registered with an MD5, straight at
    `blob_key`: the upload form makes S3 refuse other bytes (`Content-MD5`), so the URL, still
    valid for a while, can only ever store these. Without, under `incoming/`: moved to
    `blob_key` once checked, so the URL can't change what is served."""
    if artifact.md5sum:
        return blob_key(artifact)
    return f"incoming/{blob_key(artifact)}"


async def create_batch(
    session: AsyncSession, *, job: Job, batch_id: str | None, items: list[NewArtifact]
) -> list[Artifact]:
    artifacts = []
    for index, item in enumerate(items):
        field = f"artifacts[{index}]"
        if item.file_size < 0:
            raise ValidationFailed.field(f"{field}.file_size", "must not be negative")
        path = relative_path(f"{field}.path", item.path)
        check_plain(f"{field}.glob_path", item.glob_path)
        if item.md5sum and not MD5.fullmatch(item.md5sum):
            raise ValidationFailed.field(f"{field}.md5sum", "must be 32 hexadecimal digits")
        mime = item.content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        artifact = Artifact(
            id=uuid.uuid4(),
            organization_id=job.organization_id,
            build_id=job.build_id,
            job_id=job.id,
            batch_id=batch_id,
            path=path,
            glob_path=item.glob_path,
            mime_type=mime,
            file_size=item.file_size,
            sha1sum=item.sha1sum or None,
            sha256sum=item.sha256sum or None,
            md5sum=item.md5sum.lower() if item.md5sum else None,
            upload_destination=item.upload_destination or None,
        )
        session.add(artifact)
        artifacts.append(artifact)
    await session.flush()
    return artifacts


async def store_upload(
    session: AsyncSession, store: BlobStore, artifact: Artifact, chunks: AsyncIterator[bytes]
) -> None:
    """Write the bytes, check them against the declared size and hashes, mark it finished."""
    if artifact.state in ("deleted", "expired"):
        raise Unprocessable(f"Artifact is {artifact.state}")
    key = blob_key(artifact)
    written = await store.write(key, chunks)
    mismatch = (
        (artifact.sha1sum and artifact.sha1sum != written.sha1)
        or (artifact.sha256sum and artifact.sha256sum != written.sha256)
        or written.size != artifact.file_size
    )
    if mismatch:
        await store.delete(key)
        raise Unprocessable(
            f"Uploaded bytes don't match the artifact: got {written.size} bytes with sha1 "
            f"{written.sha1}, expected {artifact.file_size} bytes with sha1 {artifact.sha1sum}"
        )
    artifact.sha1sum = written.sha1
    artifact.sha256sum = written.sha256
    artifact.state = "finished"
    artifact.uploaded_at = utcnow()


@dataclass(frozen=True)
class DirectUpload:
    """An artifact an agent uploaded straight to the store, to check before it is finished."""

    id: uuid.UUID
    key: str
    upload_key: str
    file_size: int
    sha1sum: str | None
    sha256sum: str | None
    md5sum: str | None = None


@dataclass(frozen=True)
class Checked:
    """What the check of a direct upload found: the checksums, or the problem."""

    sha1: str | None = None
    sha256: str | None = None
    problem: str | None = None


async def _artifacts_to_update(
    session: AsyncSession, job: Job, states: dict[uuid.UUID, str]
) -> dict[uuid.UUID, Artifact]:
    rows = await session.scalars(
        select(Artifact).where(Artifact.job_id == job.id, Artifact.id.in_(states))
    )
    found = {row.id: row for row in rows}
    for artifact_id, state in states.items():
        if state not in ("finished", "error"):
            raise ValidationFailed.field("state", "must be finished or error")
        if artifact_id not in found:
            raise NotFound.of("artifact")
    return found


async def direct_uploads(
    session: AsyncSession, *, job: Job, states: dict[uuid.UUID, str]
) -> list[DirectUpload]:
    """The artifacts the agent says it finished uploading to the store that aren't yet."""
    found = await _artifacts_to_update(session, job, states)
    return [
        DirectUpload(
            id=artifact.id,
            key=blob_key(artifact),
            upload_key=upload_key(artifact),
            file_size=artifact.file_size,
            sha1sum=artifact.sha1sum,
            sha256sum=artifact.sha256sum,
            md5sum=artifact.md5sum,
        )
        for artifact_id, state in states.items()
        if state == "finished" and (artifact := found[artifact_id]).state == "new"
    ]


async def check_direct_upload(
    store: BlobStore, direct: DirectTransfers, upload: DirectUpload
) -> Checked:
    """Checked as the server checks the bytes it receives: the declared size and checksum
    against what the store holds, computed by the store. Registered with an MD5, S3 checked
    the bytes on arrival and the ETag (S3's MD5 of them) says so: one HEAD. Otherwise (or
    when the ETag is no MD5, as in an encrypted bucket) S3 computes a SHA-256 (SHA-1 when only
    that was declared) by copying the object; a store that computes none has the bytes read
    back and hashed here."""
    # The store unreachable is a 503 (BlobStoreUnavailable) the agent retries: nothing is
    # written before the check, so the artifact waits, still `new`.
    if upload.md5sum:
        stored = await direct.stored(upload.upload_key)
        if stored is None:
            return Checked(problem="nothing was uploaded for it")
        if stored.size == upload.file_size and stored.etag.lower() == upload.md5sum:
            return Checked(sha1=upload.sha1sum, sha256=upload.sha256sum)
        if stored.size != upload.file_size or not (upload.sha1sum or upload.sha256sum):
            await store.delete(upload.upload_key)
            return Checked(
                problem=f"uploaded bytes don't match the artifact: got {stored.size} bytes "
                f"with ETag {stored.etag}, expected {upload.file_size} bytes with md5 "
                f"{upload.md5sum}"
            )
        # Another ETag than the MD5: other bytes, or an ETag that is no MD5 (SSE-KMS, SSE-C).
        # S3's SHA decides, computed by a copy onto the same key.
    found = await direct.finish_upload(
        upload.upload_key, upload.key, sha256=upload.sha1sum is None or bool(upload.sha256sum)
    )
    if found is None:
        return Checked(problem="nothing was uploaded for it")
    sha1, sha256 = found.sha1, found.sha256
    if sha1 is None and sha256 is None:
        sha1_hash, sha256_hash = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        async for chunk in store.read(upload.key):
            sha1_hash.update(chunk)
            sha256_hash.update(chunk)
        sha1, sha256 = sha1_hash.hexdigest(), sha256_hash.hexdigest()
    mismatch = (
        found.size != upload.file_size
        or (sha256 is not None and upload.sha256sum and upload.sha256sum.lower() != sha256)
        or (sha1 is not None and upload.sha1sum and upload.sha1sum.lower() != sha1)
    )
    if mismatch:
        await store.delete(upload.key)
        got = f"sha256 {sha256}" if sha256 else f"sha1 {sha1}"
        want = f"sha256 {upload.sha256sum}" if sha256 else f"sha1 {upload.sha1sum}"
        return Checked(
            problem=f"uploaded bytes don't match the artifact: got {found.size} bytes with "
            f"{got}, expected {upload.file_size} bytes with {want}"
        )
    return Checked(sha1=sha1 or upload.sha1sum, sha256=sha256 or upload.sha256sum)


async def update_states(
    session: AsyncSession,
    *,
    job: Job,
    states: dict[uuid.UUID, str],
    checked: dict[uuid.UUID, Checked] | None = None,
) -> list[str]:
    """Apply the agent's states; with `checked` (direct uploads), an upload whose check found
    a problem is an error. The problems, by artifact path."""
    found = await _artifacts_to_update(session, job, states)
    problems = []
    for artifact_id, state in states.items():
        artifact = found[artifact_id]
        result = (checked or {}).get(artifact_id)
        if result is not None and state == "finished":
            if artifact.state != "new":
                continue  # settled meanwhile (the same update, sent twice)
            if result.problem is not None:
                artifact.state = "error"
                problems.append(f"{artifact.path}: {result.problem}")
                continue
            artifact.sha1sum = result.sha1
            artifact.sha256sum = result.sha256
            artifact.uploaded_at = utcnow()
        if artifact.state == "new" or state == "error":
            artifact.state = state
    return problems


async def get(session: AsyncSession, *, build_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact:
    artifact = await session.get(Artifact, artifact_id)
    if artifact is None or artifact.build_id != build_id or artifact.state == "deleted":
        raise NotFound.of("artifact")
    return artifact


async def get_by_id(session: AsyncSession, artifact_id: uuid.UUID) -> Artifact:
    return await get_or_not_found(session, Artifact, artifact_id, "artifact")


class ShownArtifact(NamedTuple):
    """An artifact's columns as the build page shows it, read without the ORM."""

    id: uuid.UUID
    job_id: uuid.UUID
    path: str
    state: str
    file_size: int


_SHOWN = (
    select(Artifact.id, Artifact.job_id, Artifact.path, Artifact.state, Artifact.file_size)
    .where(Artifact.build_id == bindparam("build_id"), Artifact.state != "deleted")
    .order_by(Artifact.created_at, Artifact.path)
)


async def shown_for_build(session: AsyncSession, build_id: uuid.UUID) -> list[ShownArtifact]:
    """The build's artifacts as `list_for` gives them (not deleted, oldest first), as the
    build page shows them: one
    prepared Core statement (a page's live block reads them each time)."""
    rows = await execute_core(session, _SHOWN, {"build_id": build_id})
    return [ShownArtifact._make(row) for row in rows]


async def list_for(
    session: AsyncSession,
    *,
    build_id: uuid.UUID,
    job_ids: list[uuid.UUID] | None = None,
    state: str | None = None,
    path: str | None = None,
) -> list[Artifact]:
    """A build's (or some jobs') artifacts, oldest first; `path` is exact or a `*` glob."""
    query = select(Artifact).where(Artifact.build_id == build_id)
    if job_ids is not None:
        query = query.where(Artifact.job_id.in_(job_ids))
    return await _filtered(session, query, state=state, path=path)


async def _filtered(
    session: AsyncSession, query: Select[Any], *, state: str | None, path: str | None
) -> list[Artifact]:
    """`query`'s artifacts in `state` (any but deleted by default) whose path matches `path`."""
    if state is not None and state not in STATES:
        raise ValidationFailed.field("state", f"must be one of {', '.join(STATES)}")
    query = (
        query.where(Artifact.state == state) if state else query.where(Artifact.state != "deleted")
    )
    rows = list(await session.scalars(query.order_by(Artifact.created_at, Artifact.path)))
    if path:
        rows = [row for row in rows if fnmatchcase(row.path, path)]
    return rows


async def list_for_jobs(
    session: AsyncSession,
    job_ids: Sequence[uuid.UUID],
    *,
    state: str | None = None,
    path: str | None = None,
) -> dict[uuid.UUID, list[Artifact]]:
    """`list_for`, for many jobs at once."""
    grouped: dict[uuid.UUID, list[Artifact]] = {job_id: [] for job_id in job_ids}
    if not grouped:
        return grouped
    query = select(Artifact).where(Artifact.job_id.in_(list(grouped)))
    for artifact in await _filtered(session, query, state=state, path=path):
        grouped[artifact.job_id].append(artifact)
    return grouped


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Artifact]:
    if not ids:
        return {}
    rows = await session.scalars(select(Artifact).where(Artifact.id.in_(ids)))
    return {row.id: row for row in rows}


async def delete(session: AsyncSession, store: BlobStore, artifact: Artifact) -> None:
    artifact.state = "deleted"
    await store.delete(blob_key(artifact))


async def of_builds_finished_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[Artifact]:
    """Artifacts still kept (neither deleted nor expired) of builds finished before `cutoff`."""
    return list(
        await session.scalars(
            select(Artifact)
            .where(
                Artifact.build_id.in_(builds.finished_before(cutoff)),
                Artifact.state.not_in(("deleted", "expired")),
            )
            .limit(limit)
        )
    )


async def expire(session: AsyncSession, artifact_ids: list[uuid.UUID]) -> None:
    """Mark these artifacts expired (retention: their files are deleted already)."""
    await session.execute(
        update(Artifact).where(Artifact.id.in_(artifact_ids)).values(state="expired")
    )
