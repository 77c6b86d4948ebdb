"""What a query must pass before it runs: it parses, it is valid, it names an operation, it is
no deeper than 15 and no dearer than the per-query maximum (Buildkite's wording throughout)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
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


def _validate(schema: GraphQLSchema, query: str) -> DocumentNode:
    try:
        document = parse(query)
    except GraphQLError as error:
        raise _Invalid([dict(error.formatted)]) from error
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
) -> Checked | Refused:
    try:
        document = (_valid_document if len(query) <= MAX_CACHED_QUERY else _validate)(schema, query)
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
