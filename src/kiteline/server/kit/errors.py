"""Domain errors that carry their HTTP status and Buildkite's error body shape."""

from __future__ import annotations

from typing import Any


class KitelineError(Exception):
    """Base for errors a client can act on; rendered as `{"message": ...}` with `status`."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class BadRequest(KitelineError):
    status = 400


class Unauthorized(KitelineError):
    status = 401


class Forbidden(KitelineError):
    status = 403


class NotFound(KitelineError):
    status = 404

    @classmethod
    def of(cls, thing: str) -> NotFound:
        return cls(f"No {thing} found")


class Conflict(KitelineError):
    status = 409


class Unprocessable(KitelineError):
    """A state refusal: the request was understood but the object's state forbids it."""

    status = 422


class ValidationFailed(KitelineError):
    """Buildkite's 422 `Validation Failed` with a list of `{field, code}` errors."""

    status = 422

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("Validation Failed")
        self.errors = errors

    @classmethod
    def field(cls, field: str, code: str) -> ValidationFailed:
        return cls([{"field": field, "code": code}])

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": self.errors}
