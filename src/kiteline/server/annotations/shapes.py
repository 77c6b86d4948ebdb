"""The Annotation JSON: Markdown body rendered to HTML as Buildkite does."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from kiteline.server.annotations.models import Annotation
from kiteline.server.kit.timefmt import iso

# Annotations may carry HTML as well as Markdown (as on buildkite.com); a page that shows
# `body_html` must sanitize it (the web UI's markup.py does).
_markdown = MarkdownIt("commonmark", {"html": True}).enable("table")


def body_html(body: str) -> str:
    """An annotation's Markdown as Buildkite renders it: HTML kept, not yet sanitized."""
    return _markdown.render(body)


def annotation_json(annotation: Annotation, *, omit_body: bool = False) -> dict[str, Any]:
    return {
        "id": str(annotation.id),
        "context": annotation.context,
        "style": annotation.style,
        "scope": annotation.scope,
        "job_id": str(annotation.job_id) if annotation.job_id else None,
        "priority": annotation.priority,
        "body_html": None if omit_body else body_html(annotation.body),
        "created_at": iso(annotation.created_at),
        "updated_at": iso(annotation.updated_at),
    }
