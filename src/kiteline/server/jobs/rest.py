"""The job routes under a build: get, log; the Job JSON is `shapes`'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.service import Agent
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.builds.repository import Build
from kiteline.server.jobs import service
from kiteline.server.jobs.environment import environment_for
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.shapes import job_json
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.urls import Urls
from kiteline.server.logs import http as log_http
from kiteline.server.logs import service as logs
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.tokens.auth import Principal, api_transaction
from kiteline.server.users import service as users
from kiteline.server.users.service import User

router = APIRouter(tags=["jobs"])


@dataclass(frozen=True)
class Located:
    org: str
    pipeline: Pipeline
    build: Build
    job: Job

    def json(
        self, urls: Urls, agent: Agent | None, *, unblocked_by: User | None = None
    ) -> dict[str, Any]:
        return job_json(
            urls,
            self.org,
            self.pipeline.slug,
            self.build.number,
            self.job,
            agent,
            unblocked_by=unblocked_by,
        )


@dataclass(frozen=True)
class JobPath:
    """A job route's path: the org and the job's id and, under a build, its pipeline and number."""

    org: str
    job_id: str
    pipeline: str | None = None
    number: str | None = None


async def _job_path(
    org: str, job_id: str, pipeline: str | None = None, number: str | None = None
) -> JobPath:
    # A coroutine: FastAPI would call a plain callable (the class itself) in its thread pool.
    return JobPath(org, job_id, pipeline, number)


#: A job route's path parameters (the org-scoped routes take pipeline and number as a query).
AtJob = Annotated[JobPath, Depends(_job_path)]


async def _locate(session: AsyncSession, principal: Principal, at: JobPath) -> Located:
    """A job by its build-scoped path, or by org and id alone (the org-scoped routes)."""
    organization = await organizations.get_for_user(session, slug=at.org, user_id=principal.user_id)
    parsed = parse_uuid(at.job_id)
    if parsed is None:
        raise NotFound.of("job")
    job = await service.get(session, parsed)
    if job.organization_id != organization.id:
        raise NotFound.of("job")
    build = await build_repository.get_by_id(session, job.build_id)
    found = await pipelines.get_by_id(session, build.pipeline_id)
    if at.pipeline is not None and (found.slug != at.pipeline or str(build.number) != at.number):
        raise NotFound.of("job")
    return Located(at.org, found, build, job)


# Every job route exists twice: under its build, and org-scoped by job id (as Buildkite has).
BUILD_JOB = "/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job_id}"
ORG_JOB = "/organizations/{org}/jobs/{job_id}"


def job_route(method: str, suffix: str = "", **kwargs: Any) -> Any:
    def register(endpoint: Any) -> Any:
        for prefix in (BUILD_JOB, ORG_JOB):
            router.add_api_route(prefix + suffix, endpoint, methods=[method], **kwargs)
        return endpoint

    return register


@job_route("GET")
async def get_job(request: Request, at: AtJob) -> dict[str, Any]:
    async with api_transaction(request, "read_builds") as (session, principal):
        located = await _locate(session, principal, at)
        job = located.job
        agent = await agents.get_many(session, {job.agent_id} if job.agent_id else set())
        unblocker = await users.get_many(
            session, {job.unblocked_by_id} if job.unblocked_by_id else set()
        )
        return located.json(
            Urls(base_url(request)),
            agent.get(job.agent_id) if job.agent_id else None,
            unblocked_by=unblocker.get(job.unblocked_by_id) if job.unblocked_by_id else None,
        )


@job_route("PUT", "/retry")
async def retry_job(request: Request, at: AtJob) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        located = await _locate(session, principal, at)
        new = await build_transitions.retry_job(session, job=located.job)
        return Located(at.org, located.pipeline, located.build, new).json(
            Urls(base_url(request)), None
        )


class UnblockRequest(BaseModel):
    fields: dict[str, Any] = Field(default_factory=dict)
    unblocker: str | None = None


@job_route("PUT", "/unblock")
async def unblock_job(
    request: Request, at: AtJob, body: UnblockRequest | None = None
) -> dict[str, Any]:
    body = body or UnblockRequest()
    async with api_transaction(request, "write_builds") as (session, principal):
        located = await _locate(session, principal, at)
        unblocker = principal.user
        if body.unblocker:
            member = await organizations.member(session, org=at.org, user_id=body.unblocker)
            if member is None:
                raise Unprocessable("Unblocker is not a valid user id for this organization")
            unblocker = member
        await build_transitions.unblock_job(
            session, job=located.job, fields=body.fields, unblocked_by_id=unblocker.id
        )
        return located.json(Urls(base_url(request)), None, unblocked_by=unblocker)


@job_route("GET", "/env")
@job_route("GET", "/env.{suffix}")
async def get_job_env(request: Request, at: AtJob, suffix: str | None = None) -> Response:
    if suffix not in (None, "txt", "json"):
        raise NotFound("No environment format found")
    async with api_transaction(request, "read_job_env") as (session, principal):
        located = await _locate(session, principal, at)
        agent = await agents.find(session, located.job.agent_id)
        env = await environment_for(session, located.job, agent, Urls(base_url(request)))
    if suffix == "txt" or (suffix is None and "text/plain" in request.headers.get("accept", "")):
        text = "".join(f"{key}={value}\n" for key, value in sorted(env.items()))
        return PlainTextResponse(text)
    return JSONResponse({"env": dict(sorted(env.items()))})


@job_route("GET", "/log")
@job_route("GET", "/log.{suffix}")
async def get_job_log(request: Request, at: AtJob, suffix: str | None = None) -> Response:
    if suffix not in (None, "txt", "html", "json"):
        raise NotFound("No log format found")
    async with api_transaction(request, "read_build_logs") as (session, principal):
        located = await _locate(session, principal, at)
        layout = await logs.open_log(
            session, located.job.id, complete=located.job.finished_at is not None
        )
    if _wants(request, suffix, "txt"):
        return log_http.text_response(request, layout)
    if _wants(request, suffix, "html"):
        return log_http.html_response(request, layout)
    build_url = Urls(base_url(request)).build(at.org, located.pipeline.slug, located.build.number)
    return log_http.json_response(request, layout, url=f"{build_url}/jobs/{located.job.id}/log")


@job_route("DELETE", "/log", status_code=204)
async def delete_job_log(request: Request, at: AtJob) -> Response:
    async with api_transaction(request, "write_build_logs") as (session, principal):
        located = await _locate(session, principal, at)
        key = await logs.delete_log(session, located.job.id, utcnow())
    if key is not None:
        await request.app.state.blobs.delete(key)
    return Response(status_code=204)


def _wants(request: Request, suffix: str | None, kind: str) -> bool:
    if suffix is not None:
        return suffix == kind
    accept = request.headers.get("accept", "")
    return {"txt": "text/plain", "html": "text/html"}[kind] in accept
