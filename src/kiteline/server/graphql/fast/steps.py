"""The plan of a field set that `execution.KitelineExecutionContext` runs: which fields it
resolves and completes itself (leaves, objects and lists of objects read from their source) and
which it leaves to graphql-core, and how to tell an object's type without an info."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLAbstractType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.type.scalars import serialize_boolean, serialize_id, serialize_string

from kiteline.server.graphql.fast.shortcuts import plain_is_type_of, runtime_types

#: Values that are never awaitable nor exceptions: no need to ask.
PLAIN_VALUES = frozenset({str, int, bool, float})


class LeafStep(NamedTuple):
    """A leaf field whose resolver needs only its source, and without arguments."""

    response_name: str
    field_details_list: FieldDetailsList
    field_def: GraphQLField
    resolve: Callable[[Any], Any]
    leaf_type: GraphQLLeafType
    non_null: bool
    #: The class whose values `leaf_type` serializes as they are (a str for a String).
    unchanged: type | None


#: graphql-core's serializers that return a value of this class as it is.
UNCHANGED: dict[Callable[[Any], Any], type] = {
    serialize_string: str,
    serialize_id: str,
    serialize_boolean: bool,
}


#: An object's GraphQL type from the object alone; None when only graphql-core can tell.
RuntimeType = Callable[[Any], GraphQLObjectType | None]


class ObjectStep(NamedTuple):
    """An object (or list of objects) field whose resolver needs only its source, without
    arguments or directives."""

    response_name: str
    field_details_list: FieldDetailsList
    field_def: GraphQLField
    resolve: Callable[[Any], Any]
    non_null: bool
    #: For a list: the type of its items, else None.
    item_type: GraphQLOutputType | None
    item_non_null: bool
    runtime_type: RuntimeType


class Slow:
    """Returned by the direct completion before it has done anything: graphql-core's turn."""


SLOW = Slow()


class FieldStep(NamedTuple):
    """Any other field: graphql-core's `execute_field`."""

    response_name: str
    field_details_list: FieldDetailsList


Plan = list[LeafStep | ObjectStep | FieldStep]


def runtime_type_of(named: Any, schema: GraphQLSchema) -> RuntimeType | None:
    """How to tell the object type of a value of the named type `named`, if it can be told."""
    if isinstance(named, GraphQLObjectType):
        if named.is_type_of is None:
            return lambda _value: named
        is_type_of = plain_is_type_of(named)
        if is_type_of is None:
            return None
        check: Callable[[Any], Any] = is_type_of
        return lambda value: named if check(value) is True else None
    if not isinstance(named, GraphQLAbstractType):
        return None
    names = runtime_types(named)
    if names is None:
        return None
    by_class: dict[type, tuple[GraphQLObjectType, Callable[[Any], Any] | None]] = {}
    for cls, name in names.items():
        object_type = schema.get_type(name)
        if not isinstance(object_type, GraphQLObjectType) or not schema.is_sub_type(
            named, object_type
        ):
            continue
        if object_type.is_type_of is None:
            by_class[cls] = (object_type, None)
        else:
            plain = plain_is_type_of(object_type)
            if plain is not None:
                by_class[cls] = (object_type, plain)

    def runtime_type(value: Any) -> GraphQLObjectType | None:
        found = by_class.get(type(value))
        if found is None:
            return None
        object_type, is_type_of = found
        return object_type if is_type_of is None or is_type_of(value) is True else None

    return runtime_type
