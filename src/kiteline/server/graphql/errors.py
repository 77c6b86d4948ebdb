"""GraphQL errors as clients see them: a refusal says why, a bug says only that it was logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from kiteline.server.kit.errors import KitelineError, ValidationFailed

log = logging.getLogger("kiteline.server")

INTERNAL = "Internal server error: the error was logged on the server"


def describe(error: KitelineError) -> str:
    """The reason, with each invalid field named ("Validation Failed: name can't be blank")."""
    if isinstance(error, ValidationFailed):
        details = "; ".join(f"{item['field']} {item['code']}" for item in error.errors)
        return f"{error.message}: {details}" if details else error.message
    return error.message


def unexpected(error: GraphQLError) -> bool:
    """A resolver's own failure (not a refusal, not a malformed query or variable)."""
    original = error.original_error
    return (
        error.path is not None
        and original is not None
        and not isinstance(original, KitelineError | GraphQLError)
    )


def formatted(error: GraphQLError) -> dict[str, Any]:
    shown: dict[str, Any] = dict(error.formatted)
    if isinstance(error.original_error, KitelineError):
        shown["message"] = describe(error.original_error)
    elif unexpected(error):
        shown["message"] = INTERNAL
    return shown


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if unexpected(error):
            log.error("GraphQL resolver failed at %s", error.path, exc_info=error.original_error)
