"""HTTP plumbing shared by every interface: error bodies, the per-request transaction, URLs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kiteline.server.kit.db import transaction
from kiteline.server.kit.errors import KitelineError

log = logging.getLogger("kiteline.server")


@asynccontextmanager
async def request_transaction(
    request: Request, *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed before the response is built and sent."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with transaction(sessions, read_only=read_only) as session:
        yield session


def base_url(request: Request) -> str:
    configured = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


#: Set on `app.state.error_page` by the web UI: an HTML page for an error on one of its
#: paths, None elsewhere (the APIs answer with JSON).
ErrorPage = Callable[[Request, int, str], Response | None]


def _error_response(
    request: Request,
    body: dict[str, Any],
    status: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    error_page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if error_page is not None:
        page = error_page(request, status, str(body.get("message", "")))
        if page is not None:
            return page
    return JSONResponse(body, status_code=status, headers=headers)


async def _kiteline_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, KitelineError)
    return _error_response(request, error.body(), error.status)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        detail = next(p for p in problems if p.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return _error_response(request, {"message": f"Problems parsing JSON: {reason}"}, 400)
    errors = [
        {"field": _field_name(tuple(problem.get("loc", ()))), "code": str(problem.get("msg"))}
        for problem in problems
    ]
    if problems and all(tuple(p.get("loc", ()))[:1] == ("query",) for p in problems):
        # A query string is not a record to validate: Buildkite answers 400 with a message.
        first = errors[0]
        given = problems[0].get("input")
        shown = f", got {given!r}" if isinstance(given, str) else ""
        message = f"{first['field']} is invalid: {first['code']}{shown}"
        return _error_response(request, {"message": message}, 400)
    return _error_response(request, {"message": "Validation Failed", "errors": errors}, 422)


#: The methods a 405's `Allow` may name.
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (Starlette's 405 names only
    the methods of the first route that matched the path, one of several): each method is
    tried against the app's routes, included routers answering for theirs."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    message = {404: "Not Found", 405: "Method Not Allowed"}.get(
        error.status_code, str(error.detail)
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return _error_response(request, {"message": message}, error.status_code, headers)


async def _database_error(request: Request, error: Exception) -> Response:
    """Values the database refuses (too long, a NUL character, a lost race on a unique key)
    are the client's to fix, not a server error; the transaction has been rolled back."""
    assert isinstance(error, DBAPIError)
    code = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None) or "")
    if code.startswith("22"):
        return _error_response(
            request,
            {
                "message": "A value in the request can't be stored: it is too long, out of "
                "range, or contains a NUL character"
            },
            422,
        )
    if code.startswith("23"):
        return _error_response(
            request,
            {"message": "The request conflicts with a record created at the same time; retry it"},
            409,
        )
    return await _unexpected_error(request, error)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return _error_response(
        request, {"message": "Internal Server Error: the error was logged on the server"}, 500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KitelineError, _kiteline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
