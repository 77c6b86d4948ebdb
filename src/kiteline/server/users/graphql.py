"""GraphQL types of people: User, UnregisteredUser (a build author without an account) and
Viewer (the token's user), with the `viewer` query."""

from __future__ import annotations

from typing import Annotated

import strawberry

from kiteline.server.builds import repository as build_repository
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import build_filter
from kiteline.server.graphql.connections import Connection, connection, paged, window_from
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import BuildStates
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.node import Node, RowUUID
from kiteline.server.graphql.refs import BuildRef, OrganizationRef
from kiteline.server.organizations import service as organizations
from kiteline.server.users import service
from kiteline.server.users.models import User
from kiteline.server.users.shapes import avatar_url


@strawberry.type(name="Avatar")
class Avatar:
    url: str


def _avatar(email: str) -> Avatar:
    """REST's avatar URL (a Gravatar of the email), for users with or without an account."""
    return Avatar(url=avatar_url(email))


async def _created_builds(
    self: UserNode | Viewer,
    info: Info,
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
    state: list[BuildStates] | None = None,
    branch: list[str] | None = None,
    meta_data: list[str] | None = None,
) -> Connection[BuildRef]:
    """`User.builds` and `Viewer.builds`: the builds the user created, in the organizations
    the caller belongs to."""
    where = build_filter(state=state, branch=branch, meta_data=meta_data)
    window = window_from(first, last, after, before)
    visible = info.context.organization_ids
    return await paged(
        info,
        ("creator_builds", repr(where), window),
        self.row.id,
        pages=lambda session, ids: build_repository.pages_by(
            session, "creator", ids, where=where, window=window, organization_ids=visible
        ),
        counts=lambda session, ids: build_repository.counts_by(
            session, "creator", ids, where=where, organization_ids=visible
        ),
        wrap=registry.build_node,
    )


@strawberry.type(name="User")
class UserNode(Node, RowUUID):
    row: strawberry.Private[User]

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def email(self) -> str:
        return self.row.email

    @strawberry.field
    def avatar(self) -> Avatar:
        return _avatar(self.row.email)

    @strawberry.field
    def bot(self) -> bool:
        return False

    builds = strawberry.field(
        resolver=_created_builds,
        description="Builds this user created, in the viewer's organizations",
    )


@registry.user_node.provide
def _user_node(row: User) -> UserNode:
    return UserNode(row=row)


@strawberry.type(name="UnregisteredUser", description="A build's author without an account")
class UnregisteredUser:
    name: str | None
    email: str | None

    @strawberry.field
    def avatar(self) -> Avatar:
        return _avatar(self.email or "")


@registry.unregistered_user.provide
def _unregistered_user(name: str | None, email: str | None) -> UnregisteredUser:
    return UnregisteredUser(name=name, email=email)


BuildCreator = Annotated[UserNode | UnregisteredUser, strawberry.union("BuildCreator")]


@strawberry.type(name="Viewer")
class Viewer(Node):
    row: strawberry.Private[User]

    @strawberry.field
    def user(self) -> UserNode:
        return UserNode(row=self.row)

    @strawberry.field
    async def organizations(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Connection[OrganizationRef]:
        ctx = info.context
        page = window_from(first, last, after, before).slice(
            ctx.organizations, key=lambda organization: organization.id
        )
        for organization in page.items:
            await ctx.budget.enter_organization(organization.id)

        async def count() -> int:
            return len(ctx.organizations)

        return connection(page, registry.organization_node, key=lambda row: row.id, count=count)

    builds = strawberry.field(resolver=_created_builds, description="Builds the viewer created")


@strawberry.type
class UserQuery:
    @strawberry.field(description="The token's user and what they can reach")
    def viewer(self, info: Info) -> Viewer:
        return Viewer(row=info.context.principal.user)


async def lookup_user(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    """The caller, or someone who shares one of their organizations."""
    caller = ctx.principal.user
    if global_id.uuid == caller.id:
        return UserNode(row=caller)
    user = await ctx.load(service.get_many, global_id.uuid)
    if user is None:
        return None
    shared = await ctx.read(
        lambda session: organizations.shares_organization(session, user.id, ctx.organization_ids)
    )
    return UserNode(row=user) if shared else None


async def lookup_viewer(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    caller = ctx.principal.user
    return Viewer(row=caller) if global_id.uuid == caller.id else None
