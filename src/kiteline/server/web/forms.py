"""Reading the pages' submitted HTML forms."""

from __future__ import annotations

from typing import Any


def form_text(submitted: Any, name: str) -> str:
    """A field of a submitted form (`await request.form()`) as text: "" when it is absent, or
    a file rather than text."""
    value = submitted.get(name)
    return value if isinstance(value, str) else ""
