"""What a query must pass before it runs: it parses, it has no more aliases and fields than
the limits allow (counted before validation, whose cost grows with them), it is valid, it
names an operation, it is no deeper than 15 and no dearer than the per-query maximum
(Buildkite's wording throughout)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_operation_ast,
    parse,
    validate,
)

from kiteline.server.graphql.complexity import Weight, weigh
from kiteline.server.graphql.schema import VALIDATION_RULES

MAX_DEPTH = 15
MAX_CACHED_QUERY = 4_000  # characters


@dataclass(frozen=True)
class Checked:
    document: DocumentNode
    operation: OperationDefinitionNode
    weight: Weight


@dataclass(frozen=True)
class Refused:
    errors: list[dict[str, Any]]
    requested: int = 0


class _Invalid(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


@dataclass(frozen=True)
class DocumentLimits:
    aliases: int
    fields: int


def _validate(schema: GraphQLSchema, query: str, limits: DocumentLimits) -> DocumentNode:
    try:
        document = parse(query)
    except GraphQLError as error:
        raise _Invalid([dict(error.formatted)]) from error
    fields, aliases = count_selections(document)
    if aliases > limits.aliases:
        message = f"Query has {aliases} aliases, which exceeds max aliases of {limits.aliases}"
        raise _Invalid([{"message": message}])
    if fields > limits.fields:
        message = f"Query has {fields} fields, which exceeds max fields of {limits.fields}"
        raise _Invalid([{"message": message}])
    invalid = validate(schema, document, VALIDATION_RULES)
    if invalid:
        raise _Invalid([dict(error.formatted) for error in invalid])
    return document


#: A client sends the same few queries again and again: each is parsed and validated once.
#: Documents are kept only for queries of ordinary size, failures not at all.
_valid_document = lru_cache(maxsize=64)(_validate)


def check(
    schema: GraphQLSchema,
    query: str,
    variables: Mapping[str, Any],
    operation_name: str | None,
    *,
    max_complexity: int,
    limits: DocumentLimits,
) -> Checked | Refused:
    try:
        document = (_valid_document if len(query) <= MAX_CACHED_QUERY else _validate)(
            schema, query, limits
        )
    except _Invalid as invalid:
        return Refused(invalid.errors)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        return Refused([{"message": message}])
    weight = weigh(schema, document, operation, variables)
    if weight.depth > MAX_DEPTH:
        message = f"Query has depth of {weight.depth}, which exceeds max depth of {MAX_DEPTH}"
        return Refused([{"message": message}], weight.requested)
    if weight.requested > max_complexity:
        message = (
            f"Query has complexity of {weight.requested}, "
            f"which exceeds max complexity of {max_complexity}"
        )
        return Refused([{"message": message}], weight.requested)
    return Checked(document, operation, weight)


def count_selections(document: DocumentNode) -> tuple[int, int]:
    """The fields and the aliased fields in the document's operations, each fragment counted
    every time it is spread (so a few nested fragments can't hide thousands of fields); a
    fragment that spreads itself, or an unknown one, counts nothing (validation refuses it)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    counted: dict[str, tuple[int, int]] = {}
    counting: set[str] = set()

    def count(selection_set: SelectionSetNode | None) -> tuple[int, int]:
        fields = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner_fields, inner_aliases = count(selection.selection_set)
                fields += 1 + inner_fields
                aliases += (1 if selection.alias else 0) + inner_aliases
            elif isinstance(selection, InlineFragmentNode):
                inner_fields, inner_aliases = count(selection.selection_set)
                fields, aliases = fields + inner_fields, aliases + inner_aliases
            elif isinstance(selection, FragmentSpreadNode):
                inner_fields, inner_aliases = spread(selection.name.value)
                fields, aliases = fields + inner_fields, aliases + inner_aliases
        return fields, aliases

    def spread(name: str) -> tuple[int, int]:
        if name not in counted:
            fragment = fragments.get(name)
            if fragment is None or name in counting:
                return 0, 0
            counting.add(name)
            counted[name] = count(fragment.selection_set)
            counting.discard(name)
        return counted[name]

    totals = [
        count(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    return sum(fields for fields, _ in totals), sum(aliases for _, aliases in totals)
