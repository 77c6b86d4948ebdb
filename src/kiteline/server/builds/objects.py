"""Builds' JSON as objects, for webhook payloads: the same shapes (`shapes`) and the same
fills (`fills.Filler`) as REST's, read from the rows as the transaction has them now and
never cached (the caller's transaction writes). Only what an event shows is read: a build
event its build and pipeline, a job event also its own job (not the build's thousands)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository, shapes
from kiteline.server.builds.fills import Filler, hole_key
from kiteline.server.builds.repository import Build
from kiteline.server.jobs.service import Job
from kiteline.server.kit.urls import Urls


@dataclass(frozen=True)
class BuildObjects:
    """A build's JSON without its jobs and pipeline, and its pipeline's; `url` and `web_url`
    are the build's, which its jobs' JSON repeats."""

    build: dict[str, Any]
    pipeline: dict[str, Any]
    url: str
    web_url: str


async def build_objects(
    session: AsyncSession, urls: Urls, build: Build, *, org_slug: str
) -> BuildObjects:
    meta_data = (await repository.meta_data_for(session, [build.id]))[build.id]

    def shown(hole: shapes.Hole, url: str = "", web_url: str = "") -> dict[str, Any]:
        return shapes.build_body(build, url, web_url, meta_data, hole)

    filler = await _filler_for(
        session,
        urls,
        build,
        org_slug,
        lambda hole: (shown(hole), hole("pipeline", build.pipeline_id)),
    )
    url = f"{filler.builds_url(build.pipeline_id)}{build.number}"
    web_url = f"{filler.builds_url(build.pipeline_id, web=True)}{build.number}"
    return BuildObjects(
        build=shown(filler.hole, url, web_url),
        pipeline=filler.hole("pipeline", build.pipeline_id),
        url=url,
        web_url=web_url,
    )


async def job_object(
    session: AsyncSession, urls: Urls, build: Build, job: Job, *, org_slug: str, of: BuildObjects
) -> dict[str, Any]:
    """One job of the build (`of`, from `build_objects`) as its JSON shows it."""

    def shown(hole: shapes.Hole) -> dict[str, Any]:
        return shapes.job_body(build, of.url, of.web_url, job, hole)

    return shown((await _filler_for(session, urls, build, org_slug, shown)).hole)


async def _filler_for(
    session: AsyncSession,
    urls: Urls,
    build: Build,
    org_slug: str,
    shown: Callable[[shapes.Hole], object],
) -> Filler:
    """A `Filler` that has read the rows `shown` embeds: a first pass of `shown` finds them."""
    keys: set[str] = set()

    def wanted(
        kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None
    ) -> None:
        if row_id is not None:
            keys.add(hole_key(kind, row_id, organization_id))

    shown(wanted)
    filler = Filler(session, urls, {build.organization_id: org_slug}, {})
    await filler.load(keys)
    return filler
