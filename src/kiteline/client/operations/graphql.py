"""GraphQL: one query or mutation, its `data` or a `GraphQLError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiteline.client._effects import Op, json_body, request, send
from kiteline.client.config import ClientConfig
from kiteline.client.errors import GraphQLError


def graphql(
    config: ClientConfig,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    operation_name: str | None = None,
) -> Op[dict[str, Any]]:
    """Run `query` and return its `data`; an answer with `errors` raises `GraphQLError`
    (carrying them and any partial `data`)."""
    body: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
    if operation_name is not None:
        body["operationName"] = operation_name
    response = yield from send(config, request(config, "POST", config.graphql_url, json=body))
    answer = json_body(response)
    data = answer.get("data") if isinstance(answer, dict) else None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        raise GraphQLError(list(errors), data)
    if not isinstance(data, dict):
        raise GraphQLError([{"message": "The answer carried no data"}], None)
    return data
