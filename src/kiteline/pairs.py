"""`KEY=VALUE` text, read one way everywhere a command or option takes it (`--env`,
`--meta-data`, `--field`, `--var`, `--unblock`, agent tags): the value is everything after the
first `=`, and a pair without `=` or without a key is refused with a message saying which.

Pure: it imports nothing of ours, so the agent, the client and the commands can all use it."""

from __future__ import annotations

from collections.abc import Iterable


def split_pair(text: str) -> tuple[str, str]:
    """`"KEY=VALUE"` as `("KEY", "VALUE")`; `ValueError` saying what is missing otherwise."""
    key, separator, value = text.partition("=")
    if not separator:
        raise ValueError(f"expected KEY=VALUE, got {text!r}: no '='")
    if not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}: no KEY before '='")
    return key, value


def pairs_dict(texts: Iterable[str]) -> dict[str, str]:
    """Every `KEY=VALUE` as one dict, a later key winning; the first malformed one raises."""
    return dict(split_pair(text) for text in texts)
