"""Commit statuses: a build's state as its code host shows it on the commit (GitHub's statuses
API, GitLab's commit statuses, Gitea's), queued when the webhook fan-out meets a build event
and sent in order per build by the delivery loop, with retries."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kiteline.server.builds import repository as build_repository
from kiteline.server.events.names import BUILD_EVENTS
from kiteline.server.events.outbox import Event
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.urls import Urls
from kiteline.server.pipelines import providers
from kiteline.server.pipelines import service as pipelines
from kiteline.server.sources.models import CommitStatus
from kiteline.settings import Settings

#: The hosts Kiteline posts statuses to.
POSTING = ("github", "gitlab", "gitea")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


def _status(build_state: str, blocked: bool, *, blocked_as_pending: bool) -> tuple[str, str]:
    """(GitHub's state, what the description says) for a build state."""
    if blocked:
        return ("pending", "is blocked") if blocked_as_pending else ("success", "is blocked")
    return {
        "scheduled": ("pending", "is scheduled"),
        "running": ("pending", "is running"),
        "failing": ("pending", "is failing"),
        "canceling": ("pending", "is canceling"),
        "passed": ("success", "passed"),
        "failed": ("failure", "failed"),
        "canceled": ("error", "was canceled"),
        "skipped": ("error", "was skipped"),
        "not_run": ("error", "was not run"),
    }.get(build_state, ("pending", build_state))


#: GitLab names its states its own way (and shows a running pipeline as `running`).
_GITLAB = {"success": "success", "failure": "failed", "error": "canceled"}


def api_base(provider: str, settings: Settings, repository_host: str) -> str:
    configured = {
        "github": settings.github_api_url,
        "gitlab": settings.gitlab_api_url,
        "gitea": settings.gitea_api_url,
    }[provider]
    return (configured or f"https://{repository_host}/api/v1").rstrip("/")


def auth_headers(provider: str, settings: Settings) -> dict[str, str]:
    token = {
        "github": settings.github_token,
        "gitlab": settings.gitlab_token,
        "gitea": settings.gitea_token,
    }[provider]
    headers = {"Content-Type": "application/json", "User-Agent": "Kiteline"}
    if provider == "github":
        headers["Accept"] = "application/vnd.github+json"
    if token:
        if provider == "gitlab":
            headers["PRIVATE-TOKEN"] = token
        else:
            headers["Authorization"] = f"token {token}"
    return headers


async def on_event(session: AsyncSession, event: Event, urls: Urls, settings: Settings) -> None:
    """Queue the status a build event means, when the build's pipeline publishes them and the
    status differs from the last one queued for the build."""
    if event.name not in BUILD_EVENTS:
        return
    pipeline_id = uuid.UUID(str(event.data["pipeline_id"]))
    found = (await pipelines.get_many(session, {pipeline_id})).get(pipeline_id)
    if found is None:
        return  # deleted since: nothing to tell
    provider = providers.provider_id(found.repository, found.settings)
    if provider not in POSTING or not providers.setting(found.settings, "publish_commit_status"):
        return  # most pipelines: decided without reading the build
    try:
        build, pipeline, organization, _ = await build_repository.with_surroundings(
            session, event.subject_id
        )
    except NotFound:
        return
    if not _SHA.match(build.commit):
        return  # `HEAD` or a branch name: no commit to put a status on
    host, path = providers.repository_host_and_path(pipeline.repository)
    if not path:
        return
    state, says = _status(
        str(event.data.get("state", build.state)),
        bool(event.data.get("blocked", build.blocked)),
        blocked_as_pending=bool(providers.setting(pipeline.settings, "publish_blocked_as_pending")),
    )
    if provider == "gitlab":
        running = event.data.get("state") in ("running", "failing")
        state = "running" if running and state == "pending" else _GITLAB.get(state, state)
    last = await session.scalar(
        select(CommitStatus.status)
        .where(CommitStatus.build_id == build.id)
        .order_by(CommitStatus.id.desc())
        .limit(1)
    )
    if last == state:
        return
    context = f"buildkite/{pipeline.slug}"
    body: dict[str, Any] = {
        "state": state,
        "target_url": urls.build_web(organization.slug, pipeline.slug, build.number),
        "description": f"Build #{build.number} {says}",
    }
    base = api_base(provider, settings, host)
    if provider == "gitlab":
        url = f"{base}/projects/{quote(path, safe='')}/statuses/{build.commit}"
        body["name"] = context
    else:
        url = f"{base}/repos/{path}/statuses/{build.commit}"
        body["context"] = context
    session.add(
        CommitStatus(
            build_id=build.id,
            provider=provider,
            url=url,
            body=body,
            status=state,
            state=PENDING,
            next_attempt_at=utcnow(),
        )
    )


@dataclass(frozen=True)
class StatusClaim:
    id: int
    lease_id: uuid.UUID
    attempt: int
    provider: str
    url: str
    body: dict[str, Any]


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta
) -> list[StatusClaim]:
    """Lease the statuses that are due and first in their build's queue (a host must get a
    build's states in order)."""
    earlier = aliased(CommitStatus)
    query = (
        select(CommitStatus)
        .where(
            CommitStatus.state == PENDING,
            CommitStatus.next_attempt_at <= now,
            or_(CommitStatus.leased_until.is_(None), CommitStatus.leased_until <= now),
            ~exists().where(
                earlier.build_id == CommitStatus.build_id,
                earlier.state == PENDING,
                earlier.id < CommitStatus.id,
            ),
        )
        .order_by(CommitStatus.next_attempt_at, CommitStatus.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claims = []
    for status in await session.scalars(query):
        status.lease_id = uuid.uuid4()
        status.leased_until = now + lease
        claims.append(
            StatusClaim(
                id=status.id,
                lease_id=status.lease_id,
                attempt=status.attempts_count + 1,
                provider=status.provider,
                url=status.url,
                body=dict(status.body),
            )
        )
    return claims


async def record(
    session: AsyncSession,
    claim: StatusClaim,
    *,
    status_code: int | None,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """The attempt's outcome: sent, due again at `retry_at`, or given up."""
    status = await session.get(CommitStatus, claim.id, with_for_update=True)
    if status is None or status.lease_id != claim.lease_id:
        return  # its build was deleted, or the lease lapsed and another worker took it
    now = utcnow()
    status.attempts_count = claim.attempt
    status.lease_id = None
    status.leased_until = None
    status.last_status_code = status_code
    status.last_error = error
    if status_code is not None and 200 <= status_code < 300:
        status.state, status.finished_at, status.next_attempt_at = SUCCEEDED, now, None
    elif retry_at is not None:
        status.next_attempt_at = retry_at
    else:
        status.state, status.finished_at, status.next_attempt_at = FAILED, now, None


async def for_build(session: AsyncSession, build_id: uuid.UUID) -> list[CommitStatus]:
    rows = await session.scalars(
        select(CommitStatus).where(CommitStatus.build_id == build_id).order_by(CommitStatus.id)
    )
    return list(rows)
