"""Shortcuts past strawberry's per-field machinery in the schema graphql-core runs.

A dashboard query resolves some 10,000 fields, and for each of them strawberry builds an
Info, converts arguments and runs an extension chain; it resolves a union member by trying
the schema's types in turn, and an enum value by scanning the enum. Each of these costs more
than the field itself. What the shortcuts answer is what strawberry would have answered.

Resolvers that need only their source are also recorded (`plain_resolver`), and so are the
ways to tell an object's GraphQL type without an `info` (`runtime_types`, `plain_is_type_of`):
the execution context calls them without building graphql-core's `info` at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from operator import attrgetter
from typing import Any, cast

import strawberry
from graphql import (
    GraphQLAbstractType,
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    get_nullable_type,
)
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument, convert_argument
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

_DEFINITION = GraphQLCoreConverter.DEFINITION_BACKREF

#: id(graphql-core's resolve function) -> (that function, the same called with the source only).
_PLAIN_RESOLVERS: dict[int, tuple[Callable[..., Any], Callable[[Any], Any]]] = {}


def plain_resolver(field: GraphQLField) -> Callable[[Any], Any] | None:
    """The field's resolver as a function of the source alone, if it needs nothing else."""
    found = _PLAIN_RESOLVERS.get(id(field.resolve))
    return found[1] if found is not None and found[0] is field.resolve else None


def _record_plain(resolve: Callable[..., Any], plain: Callable[[Any], Any]) -> None:
    _PLAIN_RESOLVERS[id(resolve)] = (resolve, plain)


#: id(an abstract type's resolve_type) -> (that function, the object type name by class).
_RUNTIME_TYPES: dict[int, tuple[Callable[..., Any], Mapping[type, str]]] = {}

#: strawberry's own `is_type_of` (for types with interfaces): it never reads its `info`.
_STRAWBERRY_IS_TYPE_OF = (
    "GraphQLCoreConverter.from_object.<locals>._get_is_type_of.<locals>.is_type_of"
)


def runtime_types(abstract: GraphQLAbstractType) -> Mapping[type, str] | None:
    """The names `abstract.resolve_type` gives objects of these classes (without an info)."""
    found = _RUNTIME_TYPES.get(id(abstract.resolve_type))
    return found[1] if found is not None and found[0] is abstract.resolve_type else None


def plain_is_type_of(object_type: GraphQLObjectType) -> Callable[[Any], Any] | None:
    """`object_type.is_type_of` as a function of the value alone, when strawberry made it
    (it ignores its `info`); None for any other (or none: the caller need not ask)."""
    is_type_of = object_type.is_type_of
    if is_type_of is None or getattr(is_type_of, "__qualname__", "") != _STRAWBERRY_IS_TYPE_OF:
        return None
    no_info = cast(GraphQLResolveInfo, None)
    return lambda value: is_type_of(value, no_info)


def take_shortcuts(schema: strawberry.Schema) -> None:
    """Install the shortcuts in `schema`'s graphql-core schema (once, after it is built)."""
    graphql_schema = schema._schema
    for named in graphql_schema.type_map.values():
        if named.name.startswith("__"):
            continue
        if isinstance(named, GraphQLObjectType):
            _call_resolvers_directly(named, schema.schema_converter)
        elif isinstance(named, GraphQLAbstractType):
            _resolve_type_by_class(graphql_schema, named)
        elif isinstance(named, CustomGraphQLEnumType):
            _name_members_by_lookup(named)


def _call_resolvers_directly(
    object_type: GraphQLObjectType, converter: GraphQLCoreConverter
) -> None:
    """Fields whose method takes `self` (and maybe `info`) besides its arguments, and that
    have no extensions or permissions: graphql-core calls the method itself, with the
    arguments converted as strawberry converts them."""
    for graphql_field in object_type.fields.values():
        field = (graphql_field.extensions or {}).get(_DEFINITION)
        if not isinstance(field, StrawberryField):
            continue
        if _is_basic(graphql_field, field):
            # strawberry's own resolver for an attribute: `default_resolver(source, name)`
            _record_plain(graphql_field.resolve, _attribute_reader(field))
            continue
        direct = _direct_resolver(graphql_field, field, converter)
        if direct is not None:
            graphql_field.resolve = direct


def _is_basic(graphql_field: GraphQLField, field: StrawberryField) -> bool:
    """A field without a resolver, which strawberry reads as an attribute without an info."""
    return (
        field.base_resolver is None
        and graphql_field.resolve is not None
        and getattr(graphql_field.resolve, "_is_default", False)
    )


def _attribute_reader(field: StrawberryField) -> Callable[[Any], Any]:
    default, name = field.default_resolver, field.python_name
    if default is getattr:
        return attrgetter(name)
    return lambda source: default(source, name)


#: Turns an argument's value, as graphql-core coerced it, into what the method takes.
Conversion = Callable[[Any, strawberry.Info[Any, Any]], Any]


def _direct_resolver(
    graphql_field: GraphQLField, field: StrawberryField, converter: GraphQLCoreConverter
) -> Callable[..., Any] | None:
    resolver = field.base_resolver
    if (
        resolver is None
        or field.extensions
        or resolver.self_parameter is None
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
    ):
        return None
    method = cast(Callable[..., Any], resolver.wrapped_func)
    info_class = converter.config.info_class
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    if not graphql_field.args:
        if info_name is None:
            plain: Callable[..., Any] = lambda source, _info: method(source)  # noqa: E731
            _record_plain(plain, method)
            return plain
        return lambda source, info: method(
            source, **{info_name: info_class(_raw_info=info, _field=field)}
        )
    conversions: dict[str, tuple[str, Conversion]] = {}
    for name, graphql_argument in graphql_field.args.items():
        argument = (graphql_argument.extensions or {}).get(_DEFINITION)
        if not isinstance(argument, StrawberryArgument):
            return None
        conversions[name] = (
            argument.python_name,
            _conversion(name, graphql_argument, argument, converter),
        )

    def resolve(source: Any, info: GraphQLResolveInfo, **given: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        arguments = {}
        for name, value in given.items():
            python_name, convert = conversions[name]
            arguments[python_name] = convert(value, strawberry_info)
        if info_name is not None:
            arguments[info_name] = strawberry_info
        return method(source, **arguments)

    return resolve


def _conversion(
    name: str,
    graphql_argument: GraphQLArgument,
    argument: StrawberryArgument,
    converter: GraphQLCoreConverter,
) -> Conversion:
    """Strawberry's own conversion, but none for a scalar or an enum (graphql-core already
    coerced enums to their Python members) or a flat list of them, which strawberry passes on
    as they are (lists copied: a default list is the same object on every request). Relay's
    GlobalID is the one scalar strawberry converts."""
    type_ = get_nullable_type(graphql_argument.type)
    if isinstance(type_, GraphQLList):
        type_ = get_nullable_type(type_.of_type)
    if (
        not argument.is_maybe
        and isinstance(type_, GraphQLEnumType | GraphQLScalarType)
        and type_.name != "GlobalID"
    ):
        return lambda value, _info: list(value) if isinstance(value, list) else value
    config, scalars = converter.config, converter.scalar_registry
    return lambda value, info: convert_argument(
        value, argument.type, scalars, config, info, path=(name,)
    )


def _resolve_type_by_class(schema: GraphQLSchema, abstract: GraphQLAbstractType) -> None:
    """An object of a class that is one of the union's (or interface's) types is of that type;
    anything else (a generic type's object, a cast) still goes through strawberry."""
    names: dict[type, str] = {}
    for possible in schema.get_possible_types(abstract):
        definition = (possible.extensions or {}).get(_DEFINITION)
        if (
            isinstance(definition, StrawberryObjectDefinition)
            and not definition.is_graphql_generic
            and definition.concrete_of is None
        ):
            names[definition.origin] = possible.name
    resolve_type = abstract.resolve_type
    if resolve_type is None or not names:
        return

    def by_class(value: Any, info: GraphQLResolveInfo, type_: GraphQLAbstractType) -> Any:
        name = names.get(type(value))
        return name if name is not None else resolve_type(value, info, type_)

    abstract.resolve_type = by_class
    _RUNTIME_TYPES[id(by_class)] = (by_class, names)


def _name_members_by_lookup(enum_type: CustomGraphQLEnumType) -> None:
    """An enum member's GraphQL name by one dict lookup, not a scan of the enum's values."""
    by_value = {value.value: name for name, value in enum_type.values.items()}
    members = cast(type[Enum], enum_type.wrapped_cls)
    names = {member: by_value[member.value] for member in members}
    coerce = enum_type.coerce_output_value

    def coerce_output_value(value: Any) -> Any:
        return names[value] if isinstance(value, members) else coerce(value)

    enum_type.coerce_output_value = coerce_output_value  # type: ignore[method-assign, assignment]
