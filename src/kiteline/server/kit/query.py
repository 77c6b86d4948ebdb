"""Query-string values read strictly: a value that says nothing Kiteline understands is a 400
naming the parameter, never silently taken for a default (`per_page=null`,
`include_retried_jobs=AAA`). What clients really send stays accepted: `true`/`false` in any
case (pybuildkite sends Python's `True`), `1`/`0`, and a present-but-empty value."""

from __future__ import annotations

import re
from collections.abc import Mapping

from kiteline.server.kit.errors import BadRequest

_WHOLE = re.compile(r"-?[0-9]{1,30}")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean parameter; absent or empty is false."""
    value = query.get(name)
    if value is None:
        return False
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, got {value!r}")


def integer(query: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    """A whole-number parameter at least `minimum`; absent or empty is `default`."""
    value = query.get(name)
    if value is None or not value.strip():
        return default
    text = value.strip()
    number = int(text) if _WHOLE.fullmatch(text) else None
    if number is None or number < minimum:
        raise BadRequest(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return number


def one_of(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """A parameter taking one of `choices`; absent or empty is None."""
    value = query.get(name)
    if not value:
        return None
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
