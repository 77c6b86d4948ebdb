"""/v3 artifact endpoints: batches created by `buildkite-agent artifact upload`, the signed
upload and download URLs they are given, state updates and search.

With the filesystem store the URLs are this server's own (signed with the secret key) and the
bytes come through it. With S3 (KITELINE_BLOB_URL=s3://…) they are S3's pre-signed form POST
and GET, as Buildkite's own artifact bucket: the server only signs and checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agent_api import auth
from kiteline.server.agent_api.in_job import build_for_caller
from kiteline.server.artifacts import service as artifacts
from kiteline.server.artifacts.service import Artifact
from kiteline.server.blobs import BlobStore, Download, UploadForm, content_disposition
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import BadRequest, NotFound, Unprocessable
from kiteline.server.kit.http import base_url, request_transaction
from kiteline.server.kit.query import flag, one_of
from kiteline.server.kit.signing import UrlSigner
from kiteline.server.kit.timefmt import iso

router = APIRouter(tags=["agent"])

UPLOAD_PATH = "/v3/artifacts/{id}/upload"
DOWNLOAD_PATH = "/v3/artifacts/{id}/download"
FILE_FIELD = "file"


class ArtifactItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    path: str
    file_size: int = 0
    sha1sum: str | None = None
    sha256sum: str | None = None
    md5sum: str | None = None
    glob_path: str | None = None
    content_type: str | None = None
    upload_destination: str | None = None


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    artifacts: list[ArtifactItem] = Field(default_factory=list)
    upload_destination: str | None = None


class StateUpdate(BaseModel):
    id: uuid.UUID
    state: str


class StatesUpdate(BaseModel):
    artifacts: list[StateUpdate] = Field(default_factory=list)


def signed_url(request: Request, method: str, template: str, artifact: Artifact) -> str:
    signer: UrlSigner = request.app.state.signer
    path = template.format(id=artifact.id)
    ttl = request.app.state.settings.signed_url_ttl_seconds
    return f"{base_url(request)}{path}?{signer.query(method, path, ttl)}"


async def download_urls(request: Request, found: Sequence[Artifact]) -> list[str]:
    """Where each artifact's bytes are fetched without a token: S3's pre-signed GET of a
    finished artifact, else this server's signed download URL (which refuses an artifact not
    finished: with S3, bytes uploaded straight to the artifact's key sit there unchecked until
    the agent reports them finished)."""
    store: BlobStore = request.app.state.blobs
    direct = [artifact for artifact in found if artifact.state == "finished"]
    if store.direct is None or not direct:
        return [signed_url(request, "GET", DOWNLOAD_PATH, artifact) for artifact in found]
    downloads = [
        Download(
            key=artifacts.blob_key(artifact),
            filename=artifact.path.rsplit("/", 1)[-1],
            content_type=artifact.mime_type or "application/octet-stream",
        )
        for artifact in direct
    ]
    signed = iter(
        await store.direct.presign_gets(
            downloads, request.app.state.settings.signed_url_ttl_seconds
        )
    )
    return [
        next(signed)
        if artifact.state == "finished"
        else signed_url(request, "GET", DOWNLOAD_PATH, artifact)
        for artifact in found
    ]


async def _upload_instructions(request: Request, created: list[Artifact]) -> dict[str, Any]:
    """Per artifact, the form upload buildkite-agent sends: a multipart POST of `data`'s
    fields then the file in `file_input`, to `url` with its path replaced by `path`."""
    store: BlobStore = request.app.state.blobs
    if store.direct is None:
        return {
            str(artifact.id): {
                "action": {
                    "url": signed_url(request, "POST", UPLOAD_PATH, artifact),
                    "method": "POST",
                    "path": UPLOAD_PATH.format(id=artifact.id),
                    "file_input": FILE_FIELD,
                },
                "data": {},
            }
            for artifact in created
        }
    posts = await store.direct.presign_posts(
        [
            UploadForm(
                key=artifacts.upload_key(artifact),
                size=artifact.file_size,
                content_type=artifact.mime_type or "application/octet-stream",
                md5=artifact.md5sum,
            )
            for artifact in created
        ],
        request.app.state.settings.signed_url_ttl_seconds,
    )
    return {
        str(artifact.id): {
            "action": {
                "url": post.url,
                "method": "POST",
                "path": urlsplit(post.url).path or "/",
                "file_input": FILE_FIELD,
            },
            "data": post.fields,
        }
        for artifact, post in zip(created, posts, strict=True)
    }


@router.post("/jobs/{job_id}/artifacts")
async def create_artifacts(request: Request, job_id: str, body: BatchCreate) -> dict[str, Any]:
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        created = await artifacts.create_batch(
            session,
            job=job,
            batch_id=body.id,
            items=[
                artifacts.NewArtifact(
                    path=item.path,
                    file_size=item.file_size,
                    sha1sum=item.sha1sum,
                    sha256sum=item.sha256sum,
                    md5sum=item.md5sum,
                    glob_path=item.glob_path,
                    content_type=item.content_type,
                    upload_destination=item.upload_destination or body.upload_destination,
                )
                for item in body.artifacts
            ],
        )
    instructions = await _upload_instructions(request, created)
    return {
        "id": body.id or str(uuid.uuid4()),
        "artifact_ids": [str(artifact.id) for artifact in created],
        "upload_instructions": None,
        "per_artifact_instructions": instructions,
    }


@router.put("/jobs/{job_id}/artifacts")
async def update_artifacts(request: Request, job_id: str, body: StatesUpdate) -> dict[str, Any]:
    """The agent's states. With S3, an artifact said finished is checked first (its size and
    checksum, computed by S3), outside any transaction; one that fails the check is an error,
    and the answer is a 422 naming it, as a refused upload is with the filesystem store."""
    states = {item.id: item.state for item in body.artifacts}
    store: BlobStore = request.app.state.blobs
    checked = None
    if store.direct is not None:
        async with request_transaction(request) as session:
            job = await auth.job(session, request, job_id)
            uploads = await artifacts.direct_uploads(session, job=job, states=states)
        direct = store.direct
        results = await asyncio.gather(
            *(artifacts.check_direct_upload(store, direct, upload) for upload in uploads)
        )
        checked = {upload.id: result for upload, result in zip(uploads, results, strict=True)}
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        problems = await artifacts.update_states(session, job=job, states=states, checked=checked)
    if problems:
        raise Unprocessable("Artifact uploads failed their check: " + "; ".join(problems))
    return {}


def search_json(request: Request, artifact: Artifact, url: str) -> dict[str, Any]:
    return {
        "id": str(artifact.id),
        "job_id": str(artifact.job_id),
        "path": artifact.path,
        "file_size": artifact.file_size,
        "sha1sum": artifact.sha1sum,
        "sha256sum": artifact.sha256sum,
        "url": url,
        "upload_destination": artifact.upload_destination or "",
        "created_at": iso(artifact.created_at),
        "state": artifact.state,
    }


@router.get("/builds/{build_id}/artifacts/search")
async def search_artifacts(request: Request, build_id: str) -> list[dict[str, Any]]:
    query = request.query_params
    async with request_transaction(request) as session:
        build = await build_for_caller(session, request, build_id)
        job_ids = None
        if scope := query.get("scope"):
            job_ids = await jobs.ids_for_step(session, build_id=build.id, step=scope)
        found = await artifacts.list_for(
            session,
            build_id=build.id,
            job_ids=job_ids,
            state=one_of(query, "state", artifacts.STATES),
            path=query.get("query") or None,
        )
        if not flag(query, "include_retried_jobs"):
            retried = await jobs.retried_ids(session, build.id)
            found = [artifact for artifact in found if artifact.job_id not in retried]
    urls = await download_urls(request, found)
    return [search_json(request, artifact, url) for artifact, url in zip(found, urls, strict=True)]


async def _artifact_for_url(
    session: AsyncSession, request: Request, method: str, template: str, artifact_id: str
) -> Artifact:
    try:
        parsed = uuid.UUID(artifact_id)
    except ValueError as error:
        raise NotFound.of("artifact") from error
    signer: UrlSigner = request.app.state.signer
    signer.verify(
        method,
        template.format(id=parsed),
        request.query_params.get("expires"),
        request.query_params.get("signature"),
    )
    return await artifacts.get_by_id(session, parsed)


async def _upload_chunks(request: Request) -> AsyncIterator[bytes]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=1024 * 1024)
        upload = form.get(FILE_FIELD)
        if upload is None or isinstance(upload, str):
            raise BadRequest(f"The multipart body needs the file in a field named {FILE_FIELD!r}")
        while chunk := await upload.read(1024 * 1024):
            yield chunk
        return
    async for chunk in request.stream():
        yield chunk


@router.post("/artifacts/{artifact_id}/upload", status_code=201)
@router.put("/artifacts/{artifact_id}/upload", status_code=201)
async def upload_artifact(request: Request, artifact_id: str) -> Response:
    """Bytes for an artifact, authorised by the signed URL alone (no Authorization header)."""
    if request.app.state.blobs.direct is not None:
        raise Unprocessable(
            "This server keeps artifacts in S3: upload to the URL in the artifact's upload "
            "instructions (POST jobs/{id}/artifacts), not to the server"
        )
    async with request_transaction(request) as session:
        artifact = await _artifact_for_url(session, request, "POST", UPLOAD_PATH, artifact_id)
        await artifacts.store_upload(
            session, request.app.state.blobs, artifact, _upload_chunks(request)
        )
    return Response(status_code=201)


@router.get("/artifacts/{artifact_id}/download")
async def download_artifact(request: Request, artifact_id: str) -> Response:
    """The bytes, or with S3 a 302 to S3's pre-signed GET of them."""
    async with request_transaction(request) as session:
        artifact = await _artifact_for_url(session, request, "GET", DOWNLOAD_PATH, artifact_id)
    if artifact.state != "finished":
        raise NotFound(f"Artifact is {artifact.state}, not downloadable")
    store: BlobStore = request.app.state.blobs
    if store.direct is not None:
        (url,) = await download_urls(request, [artifact])
        return RedirectResponse(url, status_code=302)
    key = artifacts.blob_key(artifact)
    if not await store.exists(key):
        raise NotFound("The artifact's bytes are gone")
    return StreamingResponse(
        store.read(key),
        media_type=artifact.mime_type or "application/octet-stream",
        headers={
            "Content-Length": str(artifact.file_size),
            "Content-Disposition": content_disposition(artifact.path.rsplit("/", 1)[-1]),
        },
    )
