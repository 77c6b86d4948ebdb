"""GraphQL's Organization, the `organization` query and the viewer's organizations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from kiteline.server.agents import service as agent_service
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import caller_organization
from kiteline.server.graphql.connections import Connection, listed, paged, window_from
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import PipelineOrders
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.node import Node, RowUUID
from kiteline.server.graphql.refs import AgentRef, PipelineRef
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.organizations.models import Organization
from kiteline.server.pipelines import service as pipeline_service

#: Kiteline has no favourites and no relevance: those orders fall back to their nearest.
_ORDERINGS = {
    PipelineOrders.NAME: "name",
    PipelineOrders.NAME_WITH_FAVORITES_FIRST: "name",
    PipelineOrders.RECENTLY_CREATED: "recently_created",
    PipelineOrders.RELEVANCE: "recently_created",
}


@strawberry.type(name="Organization")
class OrganizationNode(Node, RowUUID):
    row: strawberry.Private[Organization]

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Kiteline's organizations are never public")
    def public(self) -> bool:
        return False

    @strawberry.field
    async def pipelines(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        search: str | None = None,
        archived: bool | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
        order: PipelineOrders | None = PipelineOrders.RECENTLY_CREATED,
    ) -> Connection[PipelineRef]:
        where = pipeline_service.PipelineFilter(
            search=search, archived=archived, created_from=created_at_from, created_to=created_at_to
        )
        ordering = _ORDERINGS[order or PipelineOrders.RECENTLY_CREATED]
        window = window_from(first, last, after, before)
        return await paged(
            info,
            ("organization_pipelines", where, ordering, window),
            self.row.id,
            pages=lambda session, ids: pipeline_service.pages_for_organizations(
                session, ids, where=where, order=ordering, window=window
            ),
            counts=lambda session, ids: pipeline_service.counts_for_organizations(
                session, ids, where=where
            ),
            wrap=registry.pipeline_node,
        )

    @strawberry.field(description="Connected agents, by name")
    async def agents(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        search: str | None = None,
        meta_data: list[str] | None = None,
    ) -> Connection[AgentRef]:
        tags = tuple(meta_data or ())
        return await listed(
            info,
            ("organization_agents", search, tags),
            self.row.id,
            fetch=lambda session, ids: agent_service.connected_for_organizations(
                session, ids, search=search, meta_data=tags
            ),
            window=window_from(first, last, after, before),
            wrap=registry.agent_node,
        )


async def reveal_organization(
    ctx: GraphQLContext, organization: Organization | None
) -> OrganizationNode | None:
    """One of the caller's organizations (see `caller_organization`), its budget checked."""
    if organization is None:
        return None
    await ctx.budget.enter_organization(organization.id)
    return OrganizationNode(row=organization)


@registry.organization_node.provide
def _node(row: Organization) -> OrganizationNode:
    return OrganizationNode(row=row)


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description="One of your organizations, by slug (`acme-inc`) or UUID")
    async def organization(
        self, info: Info, slug: strawberry.ID | None = None, uuid: strawberry.ID | None = None
    ) -> OrganizationNode | None:
        ctx = info.context
        found = caller_organization(ctx, slug=slug, id_=parse_uuid(uuid) if uuid else None)
        return await reveal_organization(ctx, found)


async def lookup_organization(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    return await reveal_organization(ctx, caller_organization(ctx, id_=global_id.uuid))
