"""Reading Buildkite's global ids back: `base64("Type---uuid")`, padded or not."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class GlobalId:
    type_name: str
    uuid: uuid.UUID


def decode_global_id(value: str) -> GlobalId | None:
    """The type and uuid inside a global id, or None for anything else."""
    text = value.strip()
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, separator, raw_uuid = decoded.partition("---")
    if not separator or not type_name:
        return None
    try:
        return GlobalId(type_name, uuid.UUID(raw_uuid))
    except ValueError:
        return None
