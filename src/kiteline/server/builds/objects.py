"""Builds' JSON as objects, for webhook payloads: the same shapes (`shapes`) and the same
fills (`rendering.Filler`) as REST's, read from the rows as the transaction has them now and
never cached (the caller's transaction writes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository, shapes
from kiteline.server.builds.rendering import Filler, hole_key
from kiteline.server.builds.repository import Build
from kiteline.server.jobs import service as jobs_service
from kiteline.server.kit.urls import Urls


@dataclass(frozen=True)
class BuildObjects:
    """A build's JSON without its jobs and pipeline, its pipeline's, and each of its jobs'
    (retried ones too) by id: what build and job events show."""

    build: dict[str, Any]
    pipeline: dict[str, Any]
    jobs: dict[uuid.UUID, dict[str, Any]]


async def build_objects(
    session: AsyncSession, urls: Urls, build: Build, *, org_slug: str
) -> BuildObjects:
    meta_data = (await repository.meta_data_for(session, [build.id]))[build.id]
    jobs = await jobs_service.list_for_build(session, build.id)
    keys = {hole_key("pipeline", build.pipeline_id)}

    def wanted(
        kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None
    ) -> None:
        if row_id is not None:
            keys.add(hole_key(kind, row_id, organization_id))

    # The shapes name the rows they embed: a first pass finds them, read all at once.
    shapes.build_body(build, "", "", meta_data, wanted)
    for job in jobs:
        shapes.job_body(build, "", "", job, wanted)
    filler = Filler(session, urls, {build.organization_id: org_slug}, {})
    await filler.load(keys)
    url = f"{filler.builds_url(build.pipeline_id)}{build.number}"
    web_url = f"{filler.builds_url(build.pipeline_id, web=True)}{build.number}"
    return BuildObjects(
        build=shapes.build_body(build, url, web_url, meta_data, filler.hole),
        pipeline=filler.hole("pipeline", build.pipeline_id),
        jobs={job.id: shapes.job_body(build, url, web_url, job, filler.hole) for job in jobs},
    )
