"""Annotation Markdown as safe HTML: rendered as the annotations domain renders it for the API
(`body_html`, which keeps raw HTML as buildkite.com does), then sanitized here with nh3
(ammonia): no scripts, event handlers, styles, forms or `javascript:` links survive."""

from __future__ import annotations

import nh3
from markupsafe import Markup

from kiteline.server.annotations.shapes import body_html

# ammonia's defaults (formatting, tables, lists, links, images) plus `class` everywhere, as
# Buildkite's annotation styles use classes; links open without handing over the opener.
_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"class", "title"}
_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(html: str) -> Markup:
    return Markup(
        nh3.clean(
            html,
            tags=set(nh3.ALLOWED_TAGS),
            attributes=_ATTRIBUTES,
            url_schemes=_URL_SCHEMES,
            link_rel="noopener noreferrer nofollow",
        )
    )


def markdown_to_safe_html(markdown: str) -> Markup:
    return sanitize_html(body_html(markdown))
