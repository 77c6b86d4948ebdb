"""Every size limit the server enforces, in one place: request bodies (an ASGI middleware,
before a byte of an oversized body is read), fields (build messages, env, meta-data), steps
and jobs, pipeline text and its YAML aliases, GraphQL documents and answers.

The limits are settings (`KITELINE_MAX_*`, `KITELINE_GRAPHQL_MAX_*`). The middleware makes the
serving app's limits current for each request, so services call `current()` without being
handed settings, and REST, GraphQL and `/v3` refuse the same things with the same words.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiteline.pipeline.document import DocumentLimits
from kiteline.server.kit.errors import ValidationFailed
from kiteline.settings import Settings

#: The one route whose bodies may be larger than `max_request_bytes`: an artifact's bytes.
ARTIFACT_UPLOAD_PREFIX = "/v3/artifacts/"
ARTIFACT_UPLOAD_SUFFIX = "/upload"


class PayloadTooLarge(HTTPException):
    """413, raised from inside a request's body stream too: an HTTPException, so that FastAPI
    passes it on as it is (it turns other errors met reading a body into 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


@dataclass(frozen=True)
class Limits:
    request_bytes: int
    artifact_bytes: int
    build_message_bytes: int
    env_vars: int
    env_key_bytes: int
    env_value_bytes: int
    meta_data_key_bytes: int
    meta_data_value_bytes: int
    steps_per_upload: int
    jobs_per_build: int
    pipeline: DocumentLimits
    graphql_aliases: int
    graphql_fields: int
    graphql_answer_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            request_bytes=settings.max_request_bytes,
            artifact_bytes=settings.max_artifact_bytes,
            build_message_bytes=settings.max_build_message_bytes,
            env_vars=settings.max_env_vars,
            env_key_bytes=settings.max_env_key_bytes,
            env_value_bytes=settings.max_env_value_bytes,
            meta_data_key_bytes=settings.max_meta_data_key_bytes,
            meta_data_value_bytes=settings.max_meta_data_value_bytes,
            steps_per_upload=settings.max_steps_per_upload,
            jobs_per_build=settings.max_jobs_per_build,
            pipeline=DocumentLimits(
                max_bytes=settings.max_pipeline_bytes,
                max_alias_nodes=settings.max_pipeline_alias_nodes,
            ),
            graphql_aliases=settings.graphql_max_aliases,
            graphql_fields=settings.graphql_max_fields,
            graphql_answer_bytes=settings.graphql_max_answer_bytes,
        )


_current: contextvars.ContextVar[Limits] = contextvars.ContextVar("kiteline_limits")
_default: Limits | None = None


def current() -> Limits:
    """The limits of the app serving this request (or running these workers); the settings'
    defaults elsewhere."""
    global _default
    try:
        return _current.get()
    except LookupError:
        if _default is None:
            _default = Limits.from_settings(Settings())
        return _default


def activate(settings: Settings) -> None:
    """Make `settings`' limits current in this task and the tasks and threads it starts."""
    _current.set(Limits.from_settings(settings))


# Field checks: Buildkite's 422 `Validation Failed` naming the field, in Rails's words.


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _too_long(field: str, maximum: int) -> ValidationFailed:
    return ValidationFailed.field(field, f"is too long (maximum is {maximum} bytes)")


def check_text(field: str, value: str | None, maximum: int) -> None:
    # A text of more characters than the limit has more bytes too: no need to encode it.
    if value is not None and (len(value) > maximum or _size(value) > maximum):
        raise _too_long(field, maximum)


def check_build_message(message: str | None) -> None:
    check_text("message", message, current().build_message_bytes)


def check_env(env: Mapping[str, Any], *, field: str = "env") -> None:
    limits = current()
    if len(env) > limits.env_vars:
        raise ValidationFailed.field(
            field, f"has too many variables ({len(env)}; maximum is {limits.env_vars})"
        )
    for key, value in env.items():
        check_text(f"{field} key", str(key), limits.env_key_bytes)
        check_text(f"{field}.{key}", str(value), limits.env_value_bytes)


def check_meta_data(items: Mapping[str, Any]) -> None:
    limits = current()
    for key, value in items.items():
        check_text("key", str(key), limits.meta_data_key_bytes)
        check_text(f"value of {key}", str(value), limits.meta_data_value_bytes)


def steps_over_limit(count: int) -> str | None:
    """Why `count` steps are too many for one pipeline or upload, or None."""
    maximum = current().steps_per_upload
    if count > maximum:
        return f"Pipeline has {count} steps, more than the limit of {maximum} per upload"
    return None


def jobs_over_limit(count: int) -> str | None:
    """Why a build of `count` jobs would be too large, or None."""
    maximum = current().jobs_per_build
    if count > maximum:
        return f"The build would have {count} jobs, more than the limit of {maximum} per build"
    return None


# Request bodies.


def body_limit(path: str, limits: Limits) -> tuple[int, str]:
    """The largest body `path` takes, and the setting that says so."""
    if path.startswith(ARTIFACT_UPLOAD_PREFIX) and path.endswith(ARTIFACT_UPLOAD_SUFFIX):
        return limits.artifact_bytes, "KITELINE_MAX_ARTIFACT_BYTES"
    return limits.request_bytes, "KITELINE_MAX_REQUEST_BYTES"


def _body_too_large(size: int | None, maximum: int, setting: str) -> PayloadTooLarge:
    told = f"it is {size} bytes, over" if size is not None else "it is over"
    return PayloadTooLarge(f"Request body too large: {told} the limit of {maximum} ({setting})")


class LimitsMiddleware:
    """Makes the app's limits current for each request; refuses a body whose Content-Length
    is over its route's limit before reading any of it (413), and one sent without a length
    (chunked) as soon as what arrived passes the limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = Limits.from_settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _current.set(self.limits)
        maximum, setting = body_limit(scope["path"], self.limits)
        length = _content_length(scope)
        if length is not None and length > maximum:
            await _refuse(send, str(_body_too_large(length, maximum, setting).detail))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > maximum:
                    raise _body_too_large(None, maximum, setting)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
