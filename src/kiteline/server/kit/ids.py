"""Buildkite's GraphQL ids (`base64("Type---uuid")`), and parsing of the ids in paths,
cursors and headers: UUIDs, and numbers the database can hold."""

from __future__ import annotations

import base64
import re
import uuid

#: The largest value of a 32-bit INTEGER column (build numbers) and of a BIGINT one (ids).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_NUMBER = re.compile(r"-?[0-9]{1,20}")


def graphql_id(type_name: str, id_: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}---{id_}".encode()).decode()


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_int(value: str | None, *, minimum: int = 0, maximum: int = INT64_MAX) -> int | None:
    """`value` as an integer in `minimum..maximum`, written in ASCII digits (an optional `-`);
    None for anything else, so that an id no row can have is "not found", never a database
    error (`2**64`, `-1`, `²`, `1e3`)."""
    if value is None or not _NUMBER.fullmatch(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None
