"""What the SDK raises: one base class, API errors by status, and the helpers' own failures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from kiteline.client.models import Build


class KitelineClientError(Exception):
    """Base of every exception the SDK raises on purpose."""


class ConfigurationError(KitelineClientError):
    """The client is missing a setting (token, URL, organization) it needs for a call."""


class ApiConnectionError(KitelineClientError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ApiError(KitelineClientError):
    """The API answered with an error status; `message` is the server's own explanation."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: Any = None,
        method: str = "",
        url: str = "",
    ) -> None:
        # The query is left out of the text: signed artifact URLs carry their signature there.
        where = f" ({method} {_without_query(url)})" if url else ""
        super().__init__(f"{status} {message}{where}")
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.url = url


class BadRequest(ApiError):
    """400: the request was malformed or a filter value was refused."""


class Unauthorized(ApiError):
    """401: the token is missing, unknown or revoked."""


class Forbidden(ApiError):
    """403: the token lacks a scope, or the user may not do this."""


class NotFound(ApiError):
    """404: the object does not exist, or this token may not see it."""


class Conflict(ApiError):
    """409: the request raced another change; retrying it is expected to work."""


class Unprocessable(ApiError):
    """422: validation failed (see `errors`) or the object's state forbids the action."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Buildkite's `[{"field": ..., "code": ...}]` list, empty for state refusals."""
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return list(errors) if isinstance(errors, list) else []


class RateLimited(ApiError):
    """429 after the allowed retries, or with a reset further away than the client may wait."""

    def __init__(
        self, status: int, message: str, *, retry_after: float | None = None, **context: Any
    ) -> None:
        super().__init__(status, message, **context)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed; the request may or may not have taken effect."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
}


def error_class(status: int) -> type[ApiError]:
    return _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)


class GraphQLError(KitelineClientError):
    """The GraphQL answer carried `errors`; `data` holds whatever part did resolve."""

    def __init__(self, errors: list[dict[str, Any]], data: dict[str, Any] | None = None) -> None:
        messages = "; ".join(str(error.get("message", error)) for error in errors)
        super().__init__(messages or "GraphQL request failed")
        self.errors = errors
        self.data = data


class BuildTimeout(KitelineClientError, TimeoutError):
    """`wait_for_build` ran out of time; `build` is how the build looked at the last poll."""

    def __init__(self, message: str, *, build: Build | None) -> None:
        super().__init__(message)
        self.build = build


class ChecksumMismatch(KitelineClientError):
    """A downloaded artifact's SHA-1 differs from the one the API reported; nothing was kept."""

    def __init__(self, path: Path, *, expected: str, actual: str) -> None:
        super().__init__(
            f"{path}: downloaded bytes have SHA-1 {actual}, the API reported {expected}; "
            "the partial file was deleted"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
