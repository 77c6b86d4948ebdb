"""Agent query rules (`queue=default`, `os=linux`, `arch=*`) matched against agent tags."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase


def tags_to_map(tags: Iterable[str]) -> dict[str, str]:
    """`["queue=x", "os=linux"]` → `{"queue": "x", "os": "linux"}`; no queue tag means `default`."""
    result: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if key.strip():
            result[key.strip()] = value.strip() if sep else "true"
    result.setdefault("queue", "default")
    return result


def rules_match(rules: Iterable[str], tags: dict[str, str]) -> bool:
    """Every rule must match a tag; values may use `*` wildcards, `key=*` needs the key only."""
    for rule in rules:
        key, _, pattern = rule.partition("=")
        value = tags.get(key.strip())
        if value is None or not fnmatchcase(value, pattern.strip() or "*"):
            return False
    return True
