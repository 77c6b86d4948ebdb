"""/v2 artifacts of a build or a job: list, get, download (302 to a signed URL), delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from kiteline.server.agent_api.artifacts import download_urls
from kiteline.server.artifacts import service
from kiteline.server.artifacts.models import Artifact
from kiteline.server.artifacts.shapes import artifact_json
from kiteline.server.builds.locate import BUILDS, locate_build
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.pagination import Page, add_link_header
from kiteline.server.kit.query import one_of
from kiteline.server.kit.urls import Urls
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["artifacts"])

BUILD_ARTIFACTS = BUILDS + "/{number}/artifacts"
JOB_ARTIFACTS = BUILDS + "/{number}/jobs/{job_id}/artifacts"
ARTIFACT = JOB_ARTIFACTS + "/{artifact_id}"


def _uuid(value: str, thing: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound.of(thing)
    return parsed


async def _list(
    request: Request, response: Response, org: str, pipeline: str, number: str, job_id: str | None
) -> list[dict[str, Any]]:
    page = Page.from_request(request)
    urls = Urls(base_url(request))
    state = one_of(request.query_params, "state", service.STATES)
    async with api_transaction(request, "read_artifacts") as (session, principal):
        _, found, build = await locate_build(session, principal, org, pipeline, number)
        job_ids = None
        if job_id is not None:
            # A job of another build (or organization) is not found, as in every other
            # path: an empty list would say the id is fine.
            job = await jobs.find_ref(session, _uuid(job_id, "job"))
            if job is None or job.build_id != build.id:
                raise NotFound.of("job")
            job_ids = [job.id]
        rows = await service.list_for(
            session,
            build_id=build.id,
            job_ids=job_ids,
            state=state,
            path=request.query_params.get("path") or None,
        )
    add_link_header(response, request, urls.base, page, total=len(rows))
    selected = rows[page.offset : page.offset + page.per_page]
    return [artifact_json(urls, org, found.slug, build.number, a) for a in selected]


@router.get(BUILD_ARTIFACTS)
@router.get(BUILD_ARTIFACTS + "/", include_in_schema=False)
async def list_build_artifacts(
    request: Request, response: Response, org: str, pipeline: str, number: str
) -> list[dict[str, Any]]:
    return await _list(request, response, org, pipeline, number, None)


@router.get(JOB_ARTIFACTS)
@router.get(JOB_ARTIFACTS + "/", include_in_schema=False)
async def list_job_artifacts(
    request: Request, response: Response, org: str, pipeline: str, number: str, job_id: str
) -> list[dict[str, Any]]:
    return await _list(request, response, org, pipeline, number, job_id)


async def _artifact(
    request: Request,
    scope: str,
    org: str,
    pipeline: str,
    number: str,
    job_id: str,
    artifact_id: str,
) -> tuple[Artifact, dict[str, Any]]:
    urls = Urls(base_url(request))
    async with api_transaction(request, scope) as (session, principal):
        _, found, build = await locate_build(session, principal, org, pipeline, number)
        artifact = await service.get(
            session, build_id=build.id, artifact_id=_uuid(artifact_id, "artifact")
        )
        if str(artifact.job_id) != job_id:
            raise NotFound.of("artifact")
        if scope == "write_artifacts":
            await service.delete(session, request.app.state.blobs, artifact)
    return artifact, artifact_json(urls, org, found.slug, build.number, artifact)


@router.get(ARTIFACT)
@router.get(ARTIFACT + "/", include_in_schema=False)
async def get_artifact(
    request: Request, org: str, pipeline: str, number: str, job_id: str, artifact_id: str
) -> dict[str, Any]:
    _, body = await _artifact(request, "read_artifacts", org, pipeline, number, job_id, artifact_id)
    return body


@router.get(ARTIFACT + "/download")
@router.get(ARTIFACT + "/download/", include_in_schema=False)
async def download_artifact(
    request: Request, org: str, pipeline: str, number: str, job_id: str, artifact_id: str
) -> JSONResponse:
    """302 to a short-lived signed URL that needs no Authorization header (S3's pre-signed
    GET when the artifacts are in S3)."""
    artifact, _ = await _artifact(
        request, "read_artifacts", org, pipeline, number, job_id, artifact_id
    )
    if artifact.state == "expired":  # retention deleted its file
        raise NotFound("Artifact has expired")
    (url,) = await download_urls(request, [artifact])
    return JSONResponse({"url": url}, status_code=302, headers={"Location": url})


@router.delete(ARTIFACT, status_code=204)
@router.delete(ARTIFACT + "/", status_code=204, include_in_schema=False)
async def delete_artifact(
    request: Request, org: str, pipeline: str, number: str, job_id: str, artifact_id: str
) -> Response:
    await _artifact(request, "write_artifacts", org, pipeline, number, job_id, artifact_id)
    return Response(status_code=204)
