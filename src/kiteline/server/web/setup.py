"""Mounts the web UI on the app: static files, the pages' routers, HTML error pages."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kiteline.server.web.auth import SignInRequired
from kiteline.server.web.pages import (
    agents,
    api_tokens,
    badges,
    build,
    live,
    organizations,
    pipeline,
    pipeline_sources,
    services,
    sign_in,
    site,
)
from kiteline.server.web.routing import error_page, sign_in_redirect
from kiteline.server.web.templating import STATIC_DIR

# Matched in this order, after the APIs' routes: fixed paths first, then `/organizations/…`
# and `/user/…` (their first segments are reserved slugs), and the patterns that start with an
# organization's slug (`/{org}`, `/{org}/{pipeline}`, …) last.
PAGE_ROUTERS = (
    site.router,
    sign_in.router,
    live.router,
    badges.router,
    agents.router,
    services.router,
    api_tokens.router,
    organizations.router,
    build.router,
    pipeline_sources.router,
    pipeline.router,
)


def install_web(app: FastAPI) -> None:
    """Call after the APIs' routes are included, so that none of them is shadowed."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.state.error_page = error_page
    app.add_exception_handler(SignInRequired, sign_in_redirect)
