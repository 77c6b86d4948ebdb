"""Job JSON, and the job routes under a build: get, log."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from kiteline.server.agents.models import Agent
from kiteline.server.agents.rest import agent_json
from kiteline.server.builds import service as builds_service
from kiteline.server.jobs import service
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.auth import api_transaction
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import graphql_id, parse_uuid
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.logs import service as logs
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines

router = APIRouter(tags=["jobs"])

ANSI_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b_[^\x07]*\x07")


def rest_state(job: Job) -> str:
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
    urls: Urls, org_slug: str, pipeline_slug: str, build_number: int, job: Job, agent: Agent | None
) -> dict[str, Any]:
    build_url = urls.build(org_slug, pipeline_slug, build_number)
    web_url = f"{urls.build_web(org_slug, pipeline_slug, build_number)}#{job.id}"
    base: dict[str, Any] = {
        "id": str(job.id),
        "graphql_id": graphql_id("Job", job.id),
        "type": job.type,
        "state": rest_state(job),
        "step_key": job.step_key,
        "step": {"id": str(job.step_id), "signature": None},
        "build_url": build_url,
        "web_url": web_url,
    }
    if job.type == JobType.WAITER:
        return base
    url = f"{build_url}/jobs/{job.id}"
    return {
        **base,
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
        "agent": agent_json(urls, org_slug, agent) if agent is not None else None,
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
        "parallel_group_index": _int_env(job, "BUILDKITE_PARALLEL_JOB"),
        "parallel_group_total": _int_env(job, "BUILDKITE_PARALLEL_JOB_COUNT"),
        "matrix": None,
        "cluster_id": None,
        "cluster_url": None,
        "cluster_queue_id": None,
        "cluster_queue_url": None,
    }


def _int_env(job: Job, name: str) -> int | None:
    value = job.env.get(name)
    return int(value) if value is not None and value.isdigit() else None


async def _find_job(
    request: Request, org: str, pipeline: str, number: str, job_id: str, scope: str
) -> tuple[Job, bytes]:
    async with api_transaction(request, scope) as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        found = await pipelines.get(session, organization_id=organization.id, slug=pipeline)
        if not number.isdigit():
            raise NotFound.of("build")
        build = await builds_service.get_by_number(
            session, pipeline_id=found.id, number=int(number)
        )
        parsed = parse_uuid(job_id)
        if parsed is None:
            raise NotFound.of("job")
        job = await service.get_in_build(session, build_id=build.id, job_id=parsed)
        content = await logs.read(session, job.id)
    return job, content


def _wants(request: Request, suffix: str | None, kind: str) -> bool:
    if suffix is not None:
        return suffix == kind
    accept = request.headers.get("accept", "")
    return {"txt": "text/plain", "html": "text/html"}[kind] in accept


@router.get("/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job_id}/log")
@router.get("/organizations/{org}/pipelines/{pipeline}/builds/{number}/jobs/{job_id}/log.{suffix}")
async def get_job_log(
    request: Request, org: str, pipeline: str, number: str, job_id: str, suffix: str | None = None
) -> Response:
    if suffix not in (None, "txt", "html"):
        raise NotFound("No log format found")
    job, content = await _find_job(request, org, pipeline, number, job_id, "read_build_logs")
    if _wants(request, suffix, "txt"):
        return PlainTextResponse(content, media_type="text/plain; charset=utf-8")
    if _wants(request, suffix, "html"):
        text = ANSI_ESCAPES.sub(b"", content).decode("utf-8", "replace")
        return HTMLResponse(f'<pre class="term-container">{html.escape(text)}</pre>')
    urls = Urls(base_url(request))
    return JSONResponse(
        {
            "url": f"{urls.build(org, pipeline, int(number))}/jobs/{job.id}/log",
            "content": content.decode("utf-8", "replace"),
            "size": len(content),
            "header_times": [],
        }
    )
