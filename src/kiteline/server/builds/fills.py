"""What fills the holes of rendered builds (`rendering`): the rows a build's JSON embeds but
that change on their own (users, agents, the pipeline and its counts, the builds it points
at), read once per response and given as objects or as encoded bytes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.shapes import agent_json
from kiteline.server.builds import repository, shapes
from kiteline.server.jobs import service as jobs_service
from kiteline.server.kit.urls import Urls
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.pipelines.shapes import pipeline_json
from kiteline.server.users import service as users
from kiteline.server.users.shapes import user_json


# A hole's key names what fills it: `kind:id` (`agent:id:organization_id` for an agent, whose
# URLs are under the build's organization). A string: hashing one is cheap, a UUID's is not.
def hole_key(kind: str, row_id: uuid.UUID, organization_id: uuid.UUID | None = None) -> str:
    return f"{kind}:{row_id}:{organization_id}" if organization_id else f"{kind}:{row_id}"


def _string_content(text: str) -> bytes:
    """`text` as it appears between the quotes of a JSON string."""
    return to_json(text)[1:-1]


class Filler:
    """What fills the holes of one response's builds, each read and encoded once."""

    def __init__(
        self,
        session: AsyncSession,
        urls: Urls,
        org_slugs: dict[uuid.UUID, str],
        pipelines_known: dict[uuid.UUID, Pipeline],
    ) -> None:
        self.session = session
        self.urls = urls
        self.org_slugs = org_slugs
        self.pipelines = pipelines_known

    async def fill(self, keys: frozenset[str]) -> dict[str, bytes]:
        """The bytes of every hole in `keys`, from rows read now."""
        await self.load(keys)
        return {key: self.encoded(key) for key in keys}

    async def load(self, keys: Iterable[str]) -> None:
        """Read the rows that fill the holes `keys`, each once."""
        wanted: dict[str, set[uuid.UUID]] = {}
        for key in keys:
            kind, _, rest = key.partition(":")
            wanted.setdefault(kind, set()).add(uuid.UUID(rest[:36]))
        session = self.session
        self.parent_jobs = await jobs_service.get_many(session, wanted.get("triggered_from", set()))
        self.related = await repository.get_many(
            session,
            wanted.get("rebuilt_from", set())
            | wanted.get("triggered_build", set())
            | {job.build_id for job in self.parent_jobs.values()},
        )
        needed = (
            wanted.get("api", set())
            | wanted.get("pipeline", set())
            | {build.pipeline_id for build in self.related.values()}
        ) - set(self.pipelines)
        self.pipelines.update(await pipelines.get_many(session, needed))
        shown = [self.pipelines[pipeline_id] for pipeline_id in wanted.get("pipeline", ())]
        # The builds' users and the shown pipelines' creators in one statement.
        self.users = await users.get_many(
            session,
            wanted.get("user", set()) | {p.created_by_id for p in shown if p.created_by_id},
        )
        self.agents = await agents.get_many(session, wanted.get("agent", set()))
        self.pipelines_shown: dict[str, dict[str, Any]] = {}
        if shown:
            counts = await repository.counts_for_pipelines(session, [p.id for p in shown])
            for pipeline in shown:
                self.pipelines_shown[hole_key("pipeline", pipeline.id)] = pipeline_json(
                    self.urls,
                    self.org_slugs[pipeline.organization_id],
                    pipeline,
                    creator=self.users.get(pipeline.created_by_id)
                    if pipeline.created_by_id
                    else None,
                    counts=counts.get(pipeline.id, repository.PipelineCounts()),
                )

    def builds_url(self, pipeline_id: uuid.UUID, *, web: bool = False) -> str:
        """What a build's URL puts before its number (its pipeline read by `load`)."""
        pipeline = self.pipelines[pipeline_id]
        org_slug = self.org_slugs.get(pipeline.organization_id, "")
        if web:
            return self.urls.builds_web(org_slug, pipeline.slug)
        return self.urls.builds(org_slug, pipeline.slug)

    def _reference(self, build_id: uuid.UUID | None) -> shapes.Reference | None:
        other = self.related.get(build_id) if build_id else None
        if other is None:
            return None
        return shapes.Reference(
            other.id,
            other.number,
            f"{self.builds_url(other.pipeline_id)}{other.number}",
            f"{self.builds_url(other.pipeline_id, web=True)}{other.number}",
            self.pipelines[other.pipeline_id].slug,
        )

    def hole(
        self, kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None
    ) -> Any:
        """What fills a hole, as an object (a `shapes.Hole`, once `load` read its row)."""
        return None if row_id is None else self.value(hole_key(kind, row_id, organization_id))

    def value(self, key: str) -> Any:
        kind, _, ids = key.partition(":")
        row_id = uuid.UUID(ids[:36])
        if kind == "pipeline":
            return self.pipelines_shown[key]
        if kind == "user":
            return user_json(self.users.get(row_id))
        if kind == "agent":
            agent = self.agents.get(row_id)
            if agent is None:
                return None
            return agent_json(self.urls, self.org_slugs[uuid.UUID(ids[37:])], agent)
        if kind == "rebuilt_from":
            return shapes.rebuilt_from_json(self._reference(row_id))
        if kind == "triggered_from":
            parent_job = self.parent_jobs.get(row_id)
            return shapes.triggered_from_json(
                self._reference(parent_job.build_id) if parent_job else None
            )
        if kind == "triggered_build":
            return shapes.triggered_build_json(self._reference(row_id))
        raise ValueError(f"unknown hole {key!r}")

    def encoded(self, key: str) -> bytes:
        kind, _, ids = key.partition(":")
        if kind == "api":
            return _string_content(self.builds_url(uuid.UUID(ids)))
        if kind == "web":
            return _string_content(self.builds_url(uuid.UUID(ids), web=True))
        return to_json(self.value(key))
