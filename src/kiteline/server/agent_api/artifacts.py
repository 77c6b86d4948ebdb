"""/v3 artifact endpoints: batches created by `buildkite-agent artifact upload`, the signed
upload and download URLs they are given, state updates and search."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agent_api import auth
from kiteline.server.agent_api.in_job import build_for_caller
from kiteline.server.artifacts import service as artifacts
from kiteline.server.artifacts.models import Artifact
from kiteline.server.builds.query import truthy
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import BadRequest, NotFound
from kiteline.server.kit.http import base_url, request_transaction
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
                    glob_path=item.glob_path,
                    content_type=item.content_type,
                    upload_destination=item.upload_destination or body.upload_destination,
                )
                for item in body.artifacts
            ],
        )
    instructions = {}
    for artifact in created:
        url = signed_url(request, "POST", UPLOAD_PATH, artifact)
        instructions[str(artifact.id)] = {
            "action": {
                "url": url,
                "method": "POST",
                "path": UPLOAD_PATH.format(id=artifact.id),
                "file_input": FILE_FIELD,
            },
            "data": {},
        }
    return {
        "id": body.id or str(uuid.uuid4()),
        "artifact_ids": [str(artifact.id) for artifact in created],
        "upload_instructions": None,
        "per_artifact_instructions": instructions,
    }


@router.put("/jobs/{job_id}/artifacts")
async def update_artifacts(request: Request, job_id: str, body: StatesUpdate) -> dict[str, Any]:
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        await artifacts.update_states(
            session, job=job, states={item.id: item.state for item in body.artifacts}
        )
    return {}


def search_json(request: Request, artifact: Artifact) -> dict[str, Any]:
    return {
        "id": str(artifact.id),
        "job_id": str(artifact.job_id),
        "path": artifact.path,
        "file_size": artifact.file_size,
        "sha1sum": artifact.sha1sum,
        "sha256sum": artifact.sha256sum,
        "url": signed_url(request, "GET", DOWNLOAD_PATH, artifact),
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
            state=query.get("state") or None,
            path=query.get("query") or None,
        )
        if not truthy(query.get("include_retried_jobs")):
            retried = await jobs.retried_ids(session, build.id)
            found = [artifact for artifact in found if artifact.job_id not in retried]
    return [search_json(request, artifact) for artifact in found]


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
@router.put("/artifacts/{artifact_id}/upload", status_code=201, include_in_schema=False)
async def upload_artifact(request: Request, artifact_id: str) -> Response:
    """Bytes for an artifact, authorised by the signed URL alone (no Authorization header)."""
    async with request_transaction(request) as session:
        artifact = await _artifact_for_url(session, request, "POST", UPLOAD_PATH, artifact_id)
        await artifacts.store_upload(
            session, request.app.state.blobs, artifact, _upload_chunks(request)
        )
    return Response(status_code=201)


def content_disposition(name: str) -> str:
    """`attachment` with the file's name: an ASCII fallback, and the exact name encoded as
    RFC 6266 says (a header holds Latin-1 only, and a quote would end the name early)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/artifacts/{artifact_id}/download")
async def download_artifact(request: Request, artifact_id: str) -> StreamingResponse:
    async with request_transaction(request) as session:
        artifact = await _artifact_for_url(session, request, "GET", DOWNLOAD_PATH, artifact_id)
    if artifact.state != "finished":
        raise NotFound(f"Artifact is {artifact.state}, not downloadable")
    store = request.app.state.blobs
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
