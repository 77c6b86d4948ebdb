"""/v3 endpoints that `buildkite-agent` subcommands call from inside a job: meta-data
(`data/…`) and annotations. Authenticated with the job's token (or its agent's)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agent_api import auth
from kiteline.server.annotations import service as annotation_service
from kiteline.server.builds import meta_data as build_meta_data
from kiteline.server.builds import outcomes
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds.repository import Build
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.states import TERMINAL
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import request_transaction
from kiteline.server.pipeline_uploads import service as pipeline_uploads

router = APIRouter(tags=["agent"])


class KeyRequest(BaseModel):
    key: str


class SetRequest(BaseModel):
    key: str
    value: str


class BatchRequest(BaseModel):
    items: list[SetRequest] = Field(default_factory=list)


class PipelineUploadRequest(BaseModel):
    upload_id: uuid.UUID = Field(alias="uuid")
    pipeline: dict[str, Any] | list[Any]
    replace: bool = False


class AnnotateRequest(BaseModel):
    body: str = ""
    context: str | None = None
    style: str | None = None
    append: bool = False
    priority: int | None = None
    scope: str = "build"


async def _build_of_job(session: AsyncSession, request: Request, job_id: str) -> Build:
    job = await auth.job(session, request, job_id)
    return await build_repository.get_by_id(session, job.build_id)


async def build_for_caller(session: AsyncSession, request: Request, build_id: str) -> Build:
    """`--build <uuid>`: any build of the organization the caller's job or agent belongs to."""
    caller = await auth.job_of_token(session, request) or await auth.agent(session, request)
    try:
        build = await build_repository.get_by_id(session, uuid.UUID(build_id))
    except ValueError as error:
        raise NotFound.of("build") from error
    if build.organization_id != caller.organization_id:
        raise NotFound.of("build")
    return build


async def _get(session: AsyncSession, build: Build, key: str) -> dict[str, Any]:
    value = await build_repository.get_meta_data(session, build.id, key)
    if value is None:
        raise NotFound(f"No value for meta-data key {key!r}")
    return {"key": key, "value": value}


async def _exists(session: AsyncSession, build: Build, key: str) -> dict[str, Any]:
    return {"exists": await build_repository.get_meta_data(session, build.id, key) is not None}


async def _keys(session: AsyncSession, build: Build) -> list[str]:
    return sorted((await build_repository.meta_data_for(session, [build.id]))[build.id])


@router.post("/jobs/{job_id}/data/set")
async def data_set(request: Request, job_id: str, body: SetRequest) -> dict[str, Any]:
    async with request_transaction(request) as session:
        build = await _build_of_job(session, request, job_id)
        await build_meta_data.set_meta_data(session, build.id, {body.key: body.value})
    return {"key": body.key, "value": body.value}


@router.post("/jobs/{job_id}/data/set-batch")
async def data_set_batch(request: Request, job_id: str, body: BatchRequest) -> dict[str, Any]:
    async with request_transaction(request) as session:
        build = await _build_of_job(session, request, job_id)
        await build_meta_data.set_meta_data(session, build.id, {i.key: i.value for i in body.items})
    return {}


#: A meta-data read finds its build one of two ways: the calling job's (`/jobs/{job_id}/data/…`)
#: or, with `--build`, any build of the caller's organization (`/builds/{build_id}/data/…`).
#: The path's dependency hands the endpoint that finding, run inside its transaction.
BuildOf = Callable[[AsyncSession], Awaitable[Build]]


async def _of_job(request: Request, job_id: str) -> BuildOf:
    return lambda session: _build_of_job(session, request, job_id)


async def _of_build(request: Request, build_id: str) -> BuildOf:
    return lambda session: build_for_caller(session, request, build_id)


def _meta_data_reads(path: str, build_of: Callable[..., Awaitable[BuildOf]], name: str) -> None:
    """`get`, `exists` and `keys` at `path`/data/…, named `name`data_get and so on."""

    async def get(request: Request, body: KeyRequest, of: BuildOf = Depends(build_of)) -> Any:
        async with request_transaction(request) as session:
            return await _get(session, await of(session), body.key)

    async def exists(request: Request, body: KeyRequest, of: BuildOf = Depends(build_of)) -> Any:
        async with request_transaction(request) as session:
            return await _exists(session, await of(session), body.key)

    async def keys(request: Request, of: BuildOf = Depends(build_of)) -> Any:
        async with request_transaction(request) as session:
            return await _keys(session, await of(session))

    for verb, endpoint, answer in (
        ("get", get, dict[str, Any]),
        ("exists", exists, dict[str, Any]),
        ("keys", keys, list[str]),
    ):
        router.add_api_route(
            f"{path}/data/{verb}",
            endpoint,
            methods=["POST"],
            name=f"{name}data_{verb}",
            response_model=answer,
        )


_meta_data_reads("/jobs/{job_id}", _of_job, "")
_meta_data_reads("/builds/{build_id}", _of_build, "build_")


@router.post("/jobs/{job_id}/annotations")
async def annotate(request: Request, job_id: str, body: AnnotateRequest) -> dict[str, Any]:
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        annotation = await annotation_service.annotate(
            session,
            build_id=job.build_id,
            job_id=job.id,
            body=body.body,
            context=body.context,
            style=body.style,
            append=body.append,
            priority=body.priority,
            scope=body.scope or "build",
        )
    return {"id": str(annotation.id), "context": annotation.context}


@router.delete("/jobs/{job_id}/annotations/{context}")
async def remove_annotation(request: Request, job_id: str, context: str) -> Response:
    scope = request.query_params.get("scope") or "build"
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        await annotation_service.remove(
            session, build_id=job.build_id, id_or_context=context, scope=scope, job_id=job.id
        )
    return Response(status_code=204)


@router.post("/jobs/{job_id}/pipelines", status_code=201)
async def upload_pipeline(
    request: Request, job_id: str, body: PipelineUploadRequest
) -> dict[str, Any]:
    """Applied synchronously (never 202), so the agent needs no status polling."""
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        record = await pipeline_uploads.upload(
            session, job=job, upload_id=body.upload_id, pipeline=body.pipeline, replace=body.replace
        )
    return {"uuid": str(record.id), "state": record.state, "message": record.message}


@router.get("/jobs/{job_id}/pipelines/{upload_id}")
async def pipeline_upload_status(request: Request, job_id: str, upload_id: str) -> dict[str, Any]:
    async with request_transaction(request) as session:
        job = await auth.job(session, request, job_id)
        try:
            parsed = uuid.UUID(upload_id)
        except ValueError as error:
            raise NotFound.of("pipeline upload") from error
        record = await pipeline_uploads.get(session, job=job, upload_id=parsed)
    return {"uuid": str(record.id), "state": record.state, "message": record.message}


class StepExportRequest(BaseModel):
    attribute: str
    build_id: str | None = None
    format: str | None = None


def _outcome(states: list[Job]) -> str:
    """`step get outcome`: neutral until settled, then passed, soft_failed or hard_failed."""
    if any(job.state not in TERMINAL for job in states):
        return "neutral"
    if any(outcomes.hard_failed(job) for job in states):
        return "hard_failed"
    if any(job.soft_failed for job in states):
        return "soft_failed"
    return "passed"


@router.post("/steps/{step}/export")
async def export_step(request: Request, step: str, body: StepExportRequest) -> dict[str, Any]:
    """`buildkite-agent step get ATTRIBUTE --step KEY`: a step of the caller's build."""
    async with request_transaction(request) as session:
        caller = await auth.job_of_token(session, request)
        if body.build_id:
            build = await build_for_caller(session, request, body.build_id)
        elif caller is not None:
            build = await build_repository.get_by_id(session, caller.build_id)
        else:
            raise NotFound.of("build")
        step_jobs = [
            job
            for job in await jobs.list_for_build(session, build.id)
            if not job.retried and (job.step_key == step or str(job.step_id) == step)
        ]
    if not step_jobs:
        raise NotFound.of("step")
    first = step_jobs[0]
    values: dict[str, Any] = {
        "outcome": _outcome(step_jobs),
        "state": first.state,
        "label": first.label or "",
        "key": first.step_key or "",
        "id": str(first.step_id),
        "command": first.command or "",
        "type": first.type,
    }
    if body.attribute not in values:
        raise NotFound(f"Unknown step attribute {body.attribute!r}")
    value = values[body.attribute]
    return {"output": json.dumps(value) if body.format == "json" else str(value)}
