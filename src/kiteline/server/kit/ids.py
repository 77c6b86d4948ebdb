"""Buildkite's GraphQL ids (`base64("Type---uuid")`) and UUID parsing of path segments."""

from __future__ import annotations

import base64
import uuid


def graphql_id(type_name: str, id_: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}---{id_}".encode()).decode()


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
