"""GraphQL types of people: User, UnregisteredUser (a build author without an account) and
Viewer (the token's user), with the `viewer` query."""

from __future__ import annotations

from typing import Annotated

import strawberry

from kiteline.server.graphql import registry
from kiteline.server.graphql.access import build_filter
from kiteline.server.graphql.connections import Connection, window_from
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import BuildStates
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.node import Node
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


@strawberry.type(name="User")
class UserNode(Node):
    row: strawberry.Private[User]

    @strawberry.field
    def uuid(self) -> str:
        return str(self.row.id)

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

    @strawberry.field(description="Builds this user created, in the viewer's organizations")
    async def builds(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        state: list[BuildStates] | None = None,
        branch: list[str] | None = None,
        meta_data: list[str] | None = None,
    ) -> Connection[BuildRef]:
        return await _builds_created_by(
            info, self.row, first, last, after, before, state, branch, meta_data
        )


async def _builds_created_by(
    info: Info,
    user: User,
    first: int | None,
    last: int | None,
    after: str | None,
    before: str | None,
    state: list[BuildStates] | None,
    branch: list[str] | None,
    meta_data: list[str] | None,
) -> Connection[BuildRef]:
    """`User.builds` and `Viewer.builds`."""
    return await registry.builds_created_by(
        info,
        user.id,
        window=window_from(first, last, after, before),
        where=build_filter(state=state, branch=branch, meta_data=meta_data),
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
        return await registry.organizations_of_viewer(info, window_from(first, last, after, before))

    @strawberry.field(description="Builds the viewer created")
    async def builds(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        state: list[BuildStates] | None = None,
        branch: list[str] | None = None,
        meta_data: list[str] | None = None,
    ) -> Connection[BuildRef]:
        return await _builds_created_by(
            info, self.row, first, last, after, before, state, branch, meta_data
        )


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
