"""Reading the pages' submitted HTML forms."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

FormT = TypeVar("FormT")


def form_text(submitted: Any, name: str) -> str:
    """A field of a submitted form (`await request.form()`) as text: "" when it is absent, or
    a file rather than text."""
    value = submitted.get(name)
    return value if isinstance(value, str) else ""


def read_form(submitted: Any, form: type[FormT]) -> FormT:
    """A page's form (a dataclass whose fields are named as its inputs) as submitted: each
    `str` field the text of its input (`form_text`), each `bool` field whether its checkbox
    (`value="1"`) is ticked; the others (the errors shown back) keep their defaults."""
    values: dict[str, Any] = {}
    for each in dataclasses.fields(form):  # type: ignore[arg-type]
        if each.type == "str":
            values[each.name] = form_text(submitted, each.name)
        elif each.type == "bool":
            values[each.name] = form_text(submitted, each.name) == "1"
    return form(**values)
