"""Renders the web UI's Jinja2 templates into responses with the security headers every page
carries. Autoescaping is on for every template: text a user wrote is escaped unless a helper
(markup.py, ansi.py) made it safe."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

from kiteline import __version__
from kiteline.server.kit.timefmt import iso
from kiteline.server.web.ansi import ansi_to_html
from kiteline.server.web.auth import CSRF_FIELD, Viewer
from kiteline.server.web.markup import markdown_to_safe_html

STATIC_DIR = Path(__file__).parent / "static"

# No inline script or style anywhere: every script is a file under /static (so no nonce is
# needed), and `style-src 'self'` keeps injected <style> out. Swagger UI's icons are data: SVGs;
# annotations may show images from other hosts (an image cannot run script).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def static_url(path: str) -> str:
    """A file under /static, its URL changing with each release (so it can be cached long)."""
    return f"/static/{path}?v={__version__}"


@pass_context
def csrf_input(context: Context) -> Markup:
    """The hidden field every state-changing form carries: `{{ csrf_input() }}`."""
    token = escape(context.get("csrf_token") or "")
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">')


def digest(html: str) -> str:
    """A short fingerprint of rendered HTML: a live page replaces only the parts whose
    fingerprint changed (`data-digest`)."""
    return hashlib.blake2b(str(html).encode(), digest_size=8).hexdigest()


environment = Environment(
    loader=PackageLoader("kiteline.server.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # Templates are package data: they change with a release, which restarts the server.
    # Without this, every `get_template` (several per page) stats the file.
    auto_reload=False,
)
environment.globals.update(static=static_url, version=__version__, csrf_input=csrf_input)
environment.filters.update(
    ansi=ansi_to_html, markdown=markdown_to_safe_html, iso=iso, digest=digest
)


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
    csrf_token: str | None = None,
    organization: Any = None,
    **context: Any,
) -> HTMLResponse:
    """A page, or only one of its blocks when htmx asks to refresh the element whose id is
    that block's name (a page's live regions are blocks: see docs/decisions/0013-web-ui.md)."""
    page = environment.get_template(template)
    values = {
        "request": request,
        "viewer": viewer,
        "organization": organization,
        "csrf_token": csrf_token or (viewer.csrf_token if viewer else ""),
        **context,
    }
    target = request.headers.get("HX-Target") if request.headers.get("HX-Request") else None
    if target and target in page.blocks:
        body = "".join(page.blocks[target](page.new_context(values)))
    else:
        body = page.render(values)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
