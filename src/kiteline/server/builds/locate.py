"""Where the REST routes under a build find it: the path prefix and the build a caller may see
(the builds, meta-data, annotations and artifacts routes share them)."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import repository
from kiteline.server.builds.repository import Build
from kiteline.server.kit.errors import NotFound
from kiteline.server.organizations.models import Membership, Organization
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.tokens.auth import Principal

BUILDS = "/organizations/{org}/pipelines/{pipeline}/builds"


# The organization (if the user is a member) and its pipeline in one statement, built once:
# every route under a pipeline's builds starts with it.
_ORGANIZATION_AND_PIPELINE = (
    select(Organization, Pipeline)
    .join(Membership, Membership.organization_id == Organization.id)
    .outerjoin(
        Pipeline,
        and_(Pipeline.organization_id == Organization.id, Pipeline.slug == bindparam("pipeline")),
    )
    .where(Organization.slug == bindparam("org"), Membership.user_id == bindparam("user_id"))
)


async def pipeline_for(
    session: AsyncSession, user_id: uuid.UUID, org: str, pipeline: str
) -> tuple[Organization, Pipeline]:
    """As `organizations.get_for_user` then `pipelines.get`: 404 for an organization that
    is missing or not the user's, then for a pipeline that is missing."""
    found = (
        await session.execute(
            _ORGANIZATION_AND_PIPELINE, {"org": org, "user_id": user_id, "pipeline": pipeline}
        )
    ).first()
    if found is None:
        raise NotFound.of("organization")
    if found[1] is None:
        raise NotFound.of("pipeline")
    return found[0], found[1]


async def locate_build(
    session: AsyncSession, principal: Principal, org: str, pipeline: str, number: str
) -> tuple[Organization, Pipeline, Build]:
    """The build at `…/pipelines/{pipeline}/builds/{number}` that this caller may see."""
    organization, found = await pipeline_for(session, principal.user_id, org, pipeline)
    build = await repository.get_by_number(
        session, pipeline_id=found.id, number=repository.parse_number(number)
    )
    return organization, found, build
