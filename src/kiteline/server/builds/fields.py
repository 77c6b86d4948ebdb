"""A block or input step's fields: the values a person submits when unblocking it, checked
against the step's field definitions and made meta-data strings."""

from __future__ import annotations

import re
from typing import Any

from kiteline.server.kit.errors import ValidationFailed


def validate_block_fields(
    definitions: list[dict[str, Any]], given: dict[str, Any]
) -> dict[str, str]:
    """Field values as meta-data strings: defaults applied, required ones present, select values
    among the options (several joined by newlines), text matching its `format`."""
    errors: list[dict[str, str]] = []
    values: dict[str, str] = {}
    for spec in definitions:
        key = spec["key"]
        value = given.get(key, spec.get("default"))
        if value is None or value == "" or value == []:
            if spec.get("required", True):
                errors.append({"field": key, "code": "is required"})
            continue
        if spec.get("type") == "select":
            chosen = value if isinstance(value, list) else str(value).split("\n")
            allowed = {str(option["value"]) for option in spec.get("options", [])}
            if not spec.get("multiple") and len(chosen) > 1:
                errors.append({"field": key, "code": "takes only one value"})
            unknown = [str(v) for v in chosen if str(v) not in allowed]
            if unknown:
                errors.append({"field": key, "code": f"{unknown[0]!r} is not one of the options"})
            values[key] = "\n".join(str(v) for v in chosen)
        else:
            text = str(value)
            pattern = spec.get("format")
            if pattern and re.fullmatch(pattern, text) is None:
                errors.append({"field": key, "code": f"must match the format {pattern}"})
            values[key] = text
    if errors:
        raise ValidationFailed(errors)
    return values
