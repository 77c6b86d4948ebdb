"""Filters as Buildkite's query strings: `state[]=a&state[]=b`, `meta_data[k]=v`, `true`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any


def encode(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query pairs for keyword filters; None means "not given" and is left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs += [(f"{key}[{name}]", _scalar(item)) for name, item in value.items()]
        elif isinstance(value, set | frozenset):
            pairs += [(f"{key}[]", item) for item in sorted(map(_scalar, value))]
        elif isinstance(value, list | tuple):
            pairs += [(f"{key}[]", _scalar(item)) for item in value]
        else:
            pairs.append((key, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # Naive datetimes are taken as UTC; Buildkite wants ISO 8601.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)
