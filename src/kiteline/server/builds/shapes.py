"""The Build JSON that REST and webhooks show: a build's own fields, the objects it embeds
(each what a `Hole` gives: `rendering` leaves marks to fill per request, webhook payloads the
objects themselves) and the short forms of the builds it points at."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from kiteline.server.builds.models import Build
from kiteline.server.builds.repository import BuildListing
from kiteline.server.jobs.service import Job, JobListing
from kiteline.server.jobs.shapes import job_json_at, rest_state
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso


class Hole(Protocol):
    """What goes where a build's JSON embeds another object: `kind` (`user`, `agent`,
    `rebuilt_from`, `triggered_from`, `triggered_build`, `pipeline`) and the row's id (an
    agent's URLs also need the build's organization); None when there is no row."""

    def __call__(
        self, kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None
    ) -> Any: ...


def build_json(build: Build | BuildListing, url: str, web_url: str) -> dict[str, Any]:
    """The build's own fields."""
    return {
        "id": str(build.id),
        "graphql_id": graphql_id("Build", build.id),
        "url": url,
        "web_url": web_url,
        "number": build.number,
        "state": build.state,
        "blocked": build.blocked,
        "blocked_state": None,
        "cancel_reason": build.cancel_reason,
        "message": build.message,
        "commit": build.commit,
        "branch": build.branch,
        "tag": build.tag,
        "env": build.env,
        "source": build.source,
        "author": build.author or {},
        "created_at": iso(build.created_at),
        "scheduled_at": iso(build.scheduled_at),
        "started_at": iso(build.started_at),
        "failing_at": iso(build.failing_at),
        "finished_at": iso(build.finished_at),
        "pull_request": build.pull_request,
        "merge_queue": None,
        "cluster_id": None,
        "cluster_url": None,
    }


def build_body(
    build: Build | BuildListing, url: str, web_url: str, meta_data: dict[str, str], hole: Hole
) -> dict[str, Any]:
    """The build's JSON up to its jobs: its fields, creator, meta-data and the builds it
    points at (a webhook's `build`; REST's goes on with `jobs`, counts and `pipeline`)."""
    body = build_json(build, url, web_url)
    body["creator"] = hole("user", build.creator_id)
    body["meta_data"] = meta_data
    body["rebuilt_from"] = hole("rebuilt_from", build.rebuilt_from_id)
    body["triggered_from"] = hole("triggered_from", build.triggered_from_job_id)
    return body


def job_body(
    build: Build | BuildListing, url: str, web_url: str, job: Job | JobListing, hole: Hole
) -> dict[str, Any]:
    """One of the build's jobs (`url` and `web_url` the build's)."""
    return job_json_at(
        url,
        web_url,
        job,
        agent=hole("agent", job.agent_id, build.organization_id),
        triggered_build=hole("triggered_build", job.triggered_build_id),
        unblocked_by=hole("user", job.unblocked_by_id),
    )


def job_state_counts(jobs: Sequence[Job | JobListing]) -> dict[str, Any]:
    counts = Counter(rest_state(job) for job in jobs)
    return {"total": len(jobs), "states": dict(sorted(counts.items()))}


class Reference(NamedTuple):
    """Another build a build's JSON points at."""

    id: uuid.UUID
    number: int
    url: str
    web_url: str
    pipeline_slug: str


def rebuilt_from_json(origin: Reference | None) -> dict[str, Any] | None:
    return {"id": str(origin.id), "number": origin.number, "url": origin.url} if origin else None


def triggered_from_json(parent: Reference | None) -> dict[str, Any] | None:
    if parent is None:
        return None
    return {
        "build_id": str(parent.id),
        "build_number": parent.number,
        "build_pipeline_slug": parent.pipeline_slug,
    }


def triggered_build_json(build: Reference | None) -> dict[str, Any] | None:
    if build is None:
        return None
    return {"id": str(build.id), "number": build.number, "url": build.url, "web_url": build.web_url}
