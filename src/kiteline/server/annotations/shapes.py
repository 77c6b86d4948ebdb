"""The Annotation JSON: Markdown body rendered to HTML as Buildkite does."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from kiteline.server.annotations.models import Annotation
from kiteline.server.kit.timefmt import iso

# Annotations may carry HTML as well as Markdown (as on buildkite.com); a page that shows
# `body_html` must sanitize it.
_markdown = MarkdownIt("commonmark", {"html": True}).enable("table")


def annotation_json(annotation: Annotation, *, omit_body: bool = False) -> dict[str, Any]:
    return {
        "id": str(annotation.id),
        "context": annotation.context,
        "style": annotation.style,
        "scope": annotation.scope,
        "job_id": str(annotation.job_id) if annotation.job_id else None,
        "priority": annotation.priority,
        "body_html": None if omit_body else _markdown.render(annotation.body),
        "created_at": iso(annotation.created_at),
        "updated_at": iso(annotation.updated_at),
    }
