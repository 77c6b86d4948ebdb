"""What every web page shares: its router (CSRF enforced on state-changing requests), the
paths that belong to the APIs, and the error pages and sign-in redirects."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.convertors import Convertor, register_url_convertor

from kiteline.server.kit.urls import API_PATHS, RESERVED_SLUGS
from kiteline.server.web.auth import enforce_csrf, login_url
from kiteline.server.web.templating import render

TITLES = {
    400: "Bad Request",
    401: "Sign In Required",
    403: "Forbidden",
    404: "Page Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable",
    429: "Too Many Requests",
    500: "Something Went Wrong",
}


class SlugConvertor(Convertor[str]):
    """A slug in a page's path (`{pipeline:slug}`): letters, digits, `-` and `_`. A segment with
    anything else (`/agentedge.v1.AgentEdgeService/…`) is no page's, and stays the API's 404."""

    regex = "[A-Za-z0-9][A-Za-z0-9_-]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class OrganizationConvertor(SlugConvertor):
    """An organization's slug as a page path's first segment (`{org:org}`): never one of the
    APIs' or the UI's own first segments, so `/v3/no-such-thing` is the agent API's 404 (or
    405), not a pipeline page asking to sign in."""

    regex = (
        "(?!(?:"
        + "|".join(re.escape(slug) for slug in sorted(RESERVED_SLUGS))
        + ")(?![A-Za-z0-9_-]))"
        + SlugConvertor.regex
    )


register_url_convertor("slug", SlugConvertor())
register_url_convertor("org", OrganizationConvertor())


def page_router() -> APIRouter:
    """A router for web pages: kept out of the OpenAPI document, and every POST, PUT, PATCH
    or DELETE refused with 403 unless it carries the session's CSRF token."""
    return APIRouter(include_in_schema=False, dependencies=[Depends(enforce_csrf)])


def is_api_path(path: str) -> bool:
    if path == "/v2/docs":
        return False
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PATHS)


def error_page(request: Request, status: int, message: str) -> Response | None:
    """The HTML page for an error on a web path asked for by a browser (kit/http's
    `error_page` hook); API clients (no text/html in Accept) keep the JSON error."""
    if is_api_path(request.url.path) or "text/html" not in request.headers.get("accept", ""):
        return None
    return render(
        request,
        "error.html",
        viewer=getattr(request.state, "viewer", None),
        status=status,
        title=TITLES.get(status, "Error"),
        message=message,
        status_code=status,
    )


async def sign_in_redirect(request: Request, _error: Exception) -> Response:
    """A signed-out visitor goes to /login and comes back (htmx requests follow HX-Redirect)."""
    target = login_url(request)
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
