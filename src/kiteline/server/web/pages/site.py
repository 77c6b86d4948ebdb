"""Pages of the site itself: /v2/docs (Swagger UI for the REST API, served from the package,
so it works offline) and /favicon.ico."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render, static_url

router = page_router()


@router.get("/v2/docs")
async def api_docs(request: Request) -> Response:
    return render(request, "api_docs.html", openapi_url="/v2/openapi.json")


@router.get("/favicon.ico")
async def favicon() -> Response:
    """For clients that ask before reading a page's icon link."""
    return RedirectResponse(static_url("favicon.svg"), status_code=301)
