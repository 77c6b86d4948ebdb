"""Buildkite's custom scalars: DateTime (RFC 3339 UTC with milliseconds), JSON (a
pretty-printed string out, a string or an object in), JSInt and YAML.

Resolvers annotate with the Python types below; `SCALARS` tells the schema how each one
crosses the wire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from kiteline.server.builds.query import parse_time
from kiteline.server.kit.timefmt import iso

JSONValue = NewType("JSONValue", object)
JSInt = NewType("JSInt", int)
YAMLText = NewType("YAMLText", str)


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    return parse_time("DateTime", value)


def _serialize_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def _parse_json(value: object) -> object:
    """Clients send JSON as a string (the bk CLI sends `"{}"`) or as an object."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except json.JSONDecodeError as error:
            raise ValueError(f"JSON could not be parsed: {error.msg}") from error
    return value


SCALARS: Mapping[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="An ISO-8601 encoded UTC date string; zone-less inputs are taken as UTC",
        serialize=iso,
        parse_value=_parse_datetime,
    ),
    JSONValue: strawberry.scalar(
        name="JSON",
        description="A blob of JSON represented as a pretty formatted string",
        serialize=_serialize_json,
        parse_value=_parse_json,
    ),
    JSInt: strawberry.scalar(
        name="JSInt",
        description="An integer within JavaScript's safe range (+/- 2^53 - 1)",
        serialize=int,
        parse_value=int,
    ),
    YAMLText: strawberry.scalar(
        name="YAML", description="A YAML document, as text", serialize=str, parse_value=str
    ),
}
