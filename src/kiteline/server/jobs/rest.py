"""Job JSON, and the job routes under a build: get, log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.models import Agent
from kiteline.server.agents.shapes import agent_json
from kiteline.server.builds import service as builds_service
from kiteline.server.builds.models import Build
from kiteline.server.jobs import service
from kiteline.server.jobs.environment import environment_for
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.service import JobListing, JobSummary
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import graphql_id, parse_uuid
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.logs import http as log_http
from kiteline.server.logs import service as logs
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.tokens.auth import Principal, api_transaction
from kiteline.server.users import service as users
from kiteline.server.users.models import User
from kiteline.server.users.rest import user_json

router = APIRouter(tags=["jobs"])


def rest_state(job: Job | JobListing | JobSummary) -> str:
    """REST shows a finished job as passed or failed, and concurrency holds as scheduled."""
    state = JobState(job.state)
    if state == JobState.FINISHED:
        if job.type == JobType.WAITER:
            return "passed"
        return "passed" if job.passed else "failed"
    if state in (JobState.LIMITING, JobState.LIMITED):
        return "scheduled"
    return state.value


def job_json(
    urls: Urls,
    org_slug: str,
    pipeline_slug: str,
    build_number: int,
    job: Job | JobListing,
    agent: Agent | None,
    *,
    unblocked_by: User | None = None,
    triggered_build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A job as REST shows it; each job type has its own set of fields. `triggered_build` is
    the build a trigger job started, as `{id, number, url, web_url}`."""
    return job_json_at(
        urls.build(org_slug, pipeline_slug, build_number),
        urls.build_web(org_slug, pipeline_slug, build_number),
        job,
        agent=agent_json(urls, org_slug, agent) if agent is not None else None,
        unblocked_by=user_json(unblocked_by),
        triggered_build=triggered_build,
    )


def job_json_at(
    build_url: str,
    build_web_url: str,
    job: Job | JobListing,
    *,
    agent: Any,
    unblocked_by: Any,
    triggered_build: Any,
) -> dict[str, Any]:
    """`job_json` with its build's URLs, agent, unblocker and triggered build already rendered
    (or, for builds/rendering.py, marks where they go): a build list renders many jobs of each
    build, and many jobs of each agent."""
    job_id = str(job.id)
    body: dict[str, Any] = {
        "id": job_id,
        "graphql_id": graphql_id("Job", job.id),
        "type": job.type,
        "state": rest_state(job),
        "step_key": job.step_key,
        "step": {"id": str(job.step_id), "signature": None},
        "build_url": build_url,
        "web_url": f"{build_web_url}#{job_id}",
    }
    if job.type == JobType.WAITER:
        return body
    url = f"{build_url}/jobs/{job_id}"
    definition = job.definition
    if job.type == JobType.MANUAL:
        body.update(
            {
                "label": job.label,
                "unblocked_by": unblocked_by,
                "unblocked_at": iso(job.unblocked_at),
                "unblockable": job.state == JobState.BLOCKED,
                "unblock_url": f"{url}/unblock",
                "prompt": definition.get("prompt"),
                "fields": definition.get("fields", []),
                "created_at": iso(job.created_at),
                "runnable_at": iso(job.runnable_at),
                "finished_at": iso(job.finished_at),
            }
        )
        return body
    if job.type == JobType.TRIGGER:
        body.update(
            {
                "name": job.label,
                "label": job.label,
                "async": bool(definition.get("async")),
                "triggered_build": triggered_build,
                "trigger_error": definition.get("error"),
                "soft_failed": job.soft_failed,
                "created_at": iso(job.created_at),
                "started_at": iso(job.started_at),
                "finished_at": iso(job.finished_at),
            }
        )
        return body
    body.update(
        {
            "name": job.label,
            "label": job.label,
            "priority": {"number": job.priority},
            "agent_query_rules": list(job.agent_query_rules),
            "log_url": f"{url}/log",
            "raw_log_url": f"{url}/log.txt",
            "artifacts_url": f"{url}/artifacts",
            "command": job.command,
            "soft_failed": job.soft_failed,
            "exit_status": job.exit_status,
            "signal": job.signal,
            "signal_reason": job.signal_reason,
            "artifact_paths": job.artifact_paths or "",
            "agent": agent,
            "created_at": iso(job.created_at),
            "scheduled_at": iso(job.scheduled_at),
            "runnable_at": iso(job.runnable_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "expired_at": None,
            "retried": job.retried,
            "retried_in_job_id": str(job.retried_in_job_id) if job.retried_in_job_id else None,
            "retries_count": job.retries_count or None,
            "retry_type": job.retry_type,
            "retry_source": (
                {"job_id": str(job.retry_source_job_id), "retry_type": job.retry_type}
                if job.retry_source_job_id
                else None
            ),
            "parallel_group_index": definition.get("parallel_job"),
            "parallel_group_total": definition.get("parallel_job_count"),
            "matrix": definition.get("matrix"),
            "group_key": job.group_key,
            "cluster_id": None,
            "cluster_url": None,
            "cluster_queue_id": None,
            "cluster_queue_url": None,
        }
    )
    return body


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


async def _locate(
    session: AsyncSession,
    principal: Principal,
    *,
    org: str,
    job_id: str,
    pipeline: str | None = None,
    number: str | None = None,
) -> Located:
    """A job by its build-scoped path, or by org and id alone (the org-scoped routes)."""
    organization = await organizations.get_for_user(session, slug=org, user_id=principal.user_id)
    parsed = parse_uuid(job_id)
    if parsed is None:
        raise NotFound.of("job")
    job = await service.get(session, parsed)
    if job.organization_id != organization.id:
        raise NotFound.of("job")
    build = await builds_service.get_by_id(session, job.build_id)
    found = await pipelines.get_by_id(session, build.pipeline_id)
    if pipeline is not None and (found.slug != pipeline or str(build.number) != number):
        raise NotFound.of("job")
    return Located(org, found, build, job)


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
async def get_job(
    request: Request, org: str, job_id: str, pipeline: str | None = None, number: str | None = None
) -> dict[str, Any]:
    async with api_transaction(request, "read_builds") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
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
async def retry_job(
    request: Request, org: str, job_id: str, pipeline: str | None = None, number: str | None = None
) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
        new = await builds_service.retry_job(session, located.job)
        return Located(org, located.pipeline, located.build, new).json(
            Urls(base_url(request)), None
        )


class UnblockRequest(BaseModel):
    fields: dict[str, Any] = Field(default_factory=dict)
    unblocker: str | None = None


@job_route("PUT", "/unblock")
async def unblock_job(
    request: Request,
    org: str,
    job_id: str,
    body: UnblockRequest | None = None,
    pipeline: str | None = None,
    number: str | None = None,
) -> dict[str, Any]:
    body = body or UnblockRequest()
    async with api_transaction(request, "write_builds") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
        unblocker = principal.user
        if body.unblocker:
            member = await organizations.member(session, org=org, user_id=body.unblocker)
            if member is None:
                raise Unprocessable("Unblocker is not a valid user id for this organization")
            unblocker = member
        await builds_service.unblock_job(
            session, located.job, fields=body.fields, unblocked_by_id=unblocker.id
        )
        return located.json(Urls(base_url(request)), None, unblocked_by=unblocker)


@job_route("GET", "/env")
@job_route("GET", "/env.{suffix}")
async def get_job_env(
    request: Request,
    org: str,
    job_id: str,
    pipeline: str | None = None,
    number: str | None = None,
    suffix: str | None = None,
) -> Response:
    if suffix not in (None, "txt", "json"):
        raise NotFound("No environment format found")
    async with api_transaction(request, "read_job_env") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
        agent = await agents.find(session, located.job.agent_id)
        env = await environment_for(session, located.job, agent, Urls(base_url(request)))
    if suffix == "txt" or (suffix is None and "text/plain" in request.headers.get("accept", "")):
        text = "".join(f"{key}={value}\n" for key, value in sorted(env.items()))
        return PlainTextResponse(text)
    return JSONResponse({"env": dict(sorted(env.items()))})


@job_route("GET", "/log")
@job_route("GET", "/log.{suffix}")
async def get_job_log(
    request: Request,
    org: str,
    job_id: str,
    pipeline: str | None = None,
    number: str | None = None,
    suffix: str | None = None,
) -> Response:
    if suffix not in (None, "txt", "html", "json"):
        raise NotFound("No log format found")
    async with api_transaction(request, "read_build_logs") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
        layout = await logs.layout(
            session, located.job.id, complete=located.job.finished_at is not None
        )
    if _wants(request, suffix, "txt"):
        return log_http.text_response(request, layout)
    if _wants(request, suffix, "html"):
        return log_http.html_response(request, layout)
    build_url = Urls(base_url(request)).build(org, located.pipeline.slug, located.build.number)
    return log_http.json_response(request, layout, url=f"{build_url}/jobs/{located.job.id}/log")


@job_route("DELETE", "/log", status_code=204)
async def delete_job_log(
    request: Request, org: str, job_id: str, pipeline: str | None = None, number: str | None = None
) -> Response:
    async with api_transaction(request, "write_build_logs") as (session, principal):
        located = await _locate(
            session, principal, org=org, job_id=job_id, pipeline=pipeline, number=number
        )
        await logs.delete_log(session, located.job.id)
    return Response(status_code=204)


def _wants(request: Request, suffix: str | None, kind: str) -> bool:
    if suffix is not None:
        return suffix == kind
    accept = request.headers.get("accept", "")
    return {"txt": "text/plain", "html": "text/html"}[kind] in accept
