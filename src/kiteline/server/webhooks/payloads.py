"""Webhook bodies: the event's objects in their REST shapes (the domains' `shapes`, as REST
uses them), showing the state the event announces rather than whatever state came after it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.shapes import agent_json
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds.objects import BuildObjects, build_objects, job_object
from kiteline.server.builds.repository import Build
from kiteline.server.events.outbox import Event
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.shapes import shown_state
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.organizations.shapes import organization_json
from kiteline.server.users.service import User
from kiteline.server.webhooks.models import Webhook


@dataclass(frozen=True)
class Rendered:
    """An event's objects (`build`, `job`, `pipeline`, `agent`), and what filters look at."""

    objects: dict[str, Any]
    pipeline_id: uuid.UUID | None = None
    branch: str | None = None


class Renderer:
    """Renders events for one fan-out pass. A build (without its jobs) is rendered once per
    pass, however many of its events the pass holds; a job event's job on its own."""

    def __init__(self, session: AsyncSession, urls: Urls) -> None:
        self._session = session
        self._urls = urls
        self._builds: dict[uuid.UUID, BuildObjects] = {}

    async def event(self, organization: Organization, event: Event) -> Rendered | None:
        """None when the event's subject is gone (its pipeline was deleted since)."""
        family = event.name.partition(".")[0]
        try:
            if family == "build":
                build = await build_repository.get_by_id(
                    self._session, uuid.UUID(event.data["build_id"])
                )
                return await self._build_event(organization, build, event)
            if family == "job":
                job = await jobs.get(self._session, uuid.UUID(event.data["job_id"]))
                build = await build_repository.get_by_id(self._session, job.build_id)
                return await self._build_event(organization, build, event, job=job)
            if family == "agent":
                return await self._agent_event(organization, event)
        except NotFound:
            return None
        return None

    async def _agent_event(self, organization: Organization, event: Event) -> Rendered:
        agent = await agents.get(
            self._session,
            organization_id=organization.id,
            agent_id=uuid.UUID(event.data["agent_id"]),
        )
        shown = agent_json(self._urls, organization.slug, agent)
        shown["connection_state"] = event.data.get("connection_state", agent.connection_state)
        return Rendered({"agent": shown})

    async def _build_event(
        self, organization: Organization, build: Build, event: Event, *, job: Job | None = None
    ) -> Rendered:
        if build.id not in self._builds:
            self._builds[build.id] = await build_objects(
                self._session, self._urls, build, org_slug=organization.slug
            )
        rendered = self._builds[build.id]
        if job is None:
            shown = {
                **rendered.build,
                "state": event.data.get("state", build.state),
                "blocked": event.data.get("blocked", build.blocked),
            }
            objects = {"build": shown, "pipeline": rendered.pipeline}
        else:
            shown_job = await job_object(
                self._session, self._urls, build, job, org_slug=organization.slug, of=rendered
            )
            state = event.data.get("state", job.state)
            job_shown = {**shown_job, "state": shown_state(state, job.type, passed=job.passed)}
            objects = {"job": job_shown, "build": rendered.build, "pipeline": rendered.pipeline}
        return Rendered(objects, pipeline_id=build.pipeline_id, branch=build.branch)


def ping_objects(urls: Urls, organization: Organization, webhook: Webhook) -> dict[str, Any]:
    return {
        "service": {
            "id": str(webhook.id),
            "provider": "webhook",
            "settings": {"url": webhook.url},
        },
        "organization": organization_json(urls, organization),
    }


def sender_json(user: User | None) -> dict[str, Any] | None:
    """The user who set the webhook up, as Buildkite's payloads name them."""
    return {"id": str(user.id), "name": user.name} if user is not None else None


def body(event: str, objects: dict[str, Any], sender: User | None) -> str:
    """The exact text sent: `event` first, then the objects, then `sender`."""
    return json.dumps(
        {"event": event, **objects, "sender": sender_json(sender)}, separators=(",", ":")
    )
