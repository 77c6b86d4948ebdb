"""The Relay `Node` interface and the lookups that turn global ids back into objects."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import strawberry
from strawberry.types.base import get_object_definition

from kiteline.server.graphql.context import GraphQLContext
from kiteline.server.graphql.ids import GlobalId, decode_global_id
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.ids import graphql_id

T = TypeVar("T")


@strawberry.interface(name="Node", description="An object with a global ID")
class Node:
    row: strawberry.Private[Any]

    @strawberry.field
    def id(self) -> strawberry.ID:
        type_name = get_object_definition(type(self), strict=True).name
        return strawberry.ID(graphql_id(type_name, self.row.id))


@strawberry.type(name="RowUUID", description="Never in the schema: a row's `uuid` field")
class RowUUID:
    """The `uuid` most nodes show (their row's id as a string; annotations and artifacts
    show it as an ID): put after `Node` among a type's bases, it comes second, after `id`."""

    row: strawberry.Private[Any]

    @strawberry.field
    def uuid(self) -> str:
        return str(self.row.id)


#: Finds the object a global id names (None when missing or not the caller's to see).
NodeLookup = Callable[[GraphQLContext, GlobalId], Awaitable[Node | None]]


def id_of(value: str, accepted: Collection[str], thing: str) -> uuid.UUID:
    """The uuid inside a global id given to a mutation, if it names one of the `accepted`
    types; else Buildkite's "No <thing> found" (clients take that wording as "gone")."""
    decoded = decode_global_id(value)
    if decoded is None or decoded.type_name not in accepted:
        raise NotFound.of(thing)
    return decoded.uuid


def found(row: T | None, thing: str) -> T:
    """A mutation's target, or "No <thing> found" when it is missing or not the caller's."""
    if row is None:
        raise NotFound.of(thing)
    return row
