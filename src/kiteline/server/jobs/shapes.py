"""The Job JSON that REST, build JSON and webhooks show, and the state REST names."""

from __future__ import annotations

from typing import Any

from kiteline.server.agents.service import Agent
from kiteline.server.agents.shapes import agent_json
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.service import JobListing, JobSummary
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.users.service import User
from kiteline.server.users.shapes import user_json


def rest_state(job: Job | JobListing | JobSummary) -> str:
    """The job's state as REST shows it (`shown_state`)."""
    return shown_state(job.state, job.type, passed=job.passed)


def shown_state(state: str, type_: str, *, passed: bool | None) -> str:
    """REST shows a finished job as passed or failed, and concurrency holds as scheduled."""
    named = JobState(state)
    if named == JobState.FINISHED:
        if type_ == JobType.WAITER:
            return "passed"
        return "passed" if passed else "failed"
    if named in (JobState.LIMITING, JobState.LIMITED):
        return "scheduled"
    return named.value


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
                "prompt": definition.prompt,
                "fields": definition.fields,
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
                "async": definition.async_,
                "triggered_build": triggered_build,
                "trigger_error": definition.error,
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
            "parallel_group_index": definition.parallel_job,
            "parallel_group_total": definition.parallel_job_count,
            "matrix": definition.matrix,
            "group_key": job.group_key,
            "cluster_id": None,
            "cluster_url": None,
            "cluster_queue_id": None,
            "cluster_queue_url": None,
        }
    )
    return body
