"""Where the REST routes under a build find it: the path prefix and the build a caller may see
(the builds, meta-data, annotations and artifacts routes share them)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository
from kiteline.server.builds.repository import Build
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.tokens.auth import Principal

BUILDS = "/organizations/{org}/pipelines/{pipeline}/builds"


async def pipeline_for(
    session: AsyncSession, user_id: uuid.UUID, org: str, pipeline: str
) -> tuple[Organization, Pipeline]:
    """The organization `org` of this user and its pipeline `pipeline`, or NotFound."""
    organization = await organizations.get_for_user(session, slug=org, user_id=user_id)
    return organization, await pipelines.get(
        session, organization_id=organization.id, slug=pipeline
    )


async def locate_build(
    session: AsyncSession, principal: Principal, org: str, pipeline: str, number: str
) -> tuple[Organization, Pipeline, Build]:
    """The build at `…/pipelines/{pipeline}/builds/{number}` that this caller may see."""
    organization, found = await pipeline_for(session, principal.user_id, org, pipeline)
    build = await repository.get_by_number(
        session, pipeline_id=found.id, number=repository.parse_number(number)
    )
    return organization, found, build
