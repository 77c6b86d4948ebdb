"""What resolvers of every domain ask of the caller's reach: which of their organizations an
object is in, the pipeline or build a mutation names, a build's page, and GraphQL's build
filters as the service's. Rows come from the domains' services; nodes are the domains' own."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from kiteline.server.builds import repository as builds
from kiteline.server.graphql.context import GraphQLContext
from kiteline.server.graphql.enums import BuildStates, values
from kiteline.server.graphql.node import found, id_of
from kiteline.server.pipelines import service as pipelines

if TYPE_CHECKING:  # the rows the services return, named through them (not their tables)
    from kiteline.server.builds.repository import Build
    from kiteline.server.organizations.service import Organization
    from kiteline.server.pipelines.service import Pipeline

DEFAULT_BRANCH = "%default"  # in a `branch` filter: the pipeline's default branch


def caller_organization(
    ctx: GraphQLContext, *, slug: str | None = None, id_: uuid.UUID | None = None
) -> Organization | None:
    """One of the caller's organizations, by slug or id (slugs such as `org/pipeline` start
    with one); None for any other."""
    return next(
        (o for o in ctx.organizations if o.slug == slug or (id_ is not None and o.id == id_)),
        None,
    )


def organization_of(ctx: GraphQLContext, organization_id: uuid.UUID) -> Organization:
    """The caller's organization an object they can see is in, or "No organization found"."""
    return found(caller_organization(ctx, id_=organization_id), "organization")


async def pipeline_for_mutation(ctx: GraphQLContext, id_: str) -> Pipeline:
    """The pipeline a mutation names by global id, or "No pipeline found"."""
    pipeline_id = id_of(id_, {"Pipeline"}, "pipeline")
    return found(await ctx.reveal(await ctx.load(pipelines.get_many, pipeline_id)), "pipeline")


async def build_for_mutation(ctx: GraphQLContext, id_: str) -> Build:
    """The build a mutation names by global id, or "No build found"."""
    build_id = id_of(id_, {"Build"}, "build")
    return found(await ctx.reveal(await ctx.load(builds.get_many, build_id)), "build")


async def build_web_url(ctx: GraphQLContext, build: Build) -> str:
    """The build's page on this server."""
    pipeline = await ctx.load(pipelines.get_many, build.pipeline_id)
    organization = caller_organization(ctx, id_=build.organization_id)
    return ctx.urls.build_web(
        organization.slug if organization else "", pipeline.slug if pipeline else "", build.number
    )


def build_filter(
    *,
    state: list[BuildStates] | None = None,
    branch: list[str] | None = None,
    commit: list[str] | None = None,
    meta_data: list[str] | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    default_branch: str | None = None,
) -> builds.BuildFilter:
    """GraphQL's build filters as the service's (the REST list's) BuildFilter."""
    branches = [
        default_branch if name == DEFAULT_BRANCH and default_branch else name
        for name in branch or []
    ]
    pairs = [item.partition("=") for item in meta_data or []]
    return builds.BuildFilter(
        branches=tuple(branches),
        states=tuple(values(state)),
        commits=tuple(commit or ()),
        created_from=created_from,
        created_to=created_to,
        meta_data={key: value for key, _, value in pairs},
    )
