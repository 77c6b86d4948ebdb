"""/v2/docs: Swagger UI for the REST API, served from the package (no CDN, works offline)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()


@router.get("/v2/docs")
async def api_docs(request: Request) -> Response:
    return render(request, "api_docs.html", openapi_url="/v2/openapi.json")
