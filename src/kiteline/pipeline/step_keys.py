"""The keys each step type takes (Buildkite's pipeline schema), and "did you mean …?" for a
key that is almost one of them.

A key nobody knows is kept (Buildkite adds keys over time, and a pipeline written for a newer
Buildkite must still load); a key one typo away from a known one is refused, because its
step would otherwise run without what the author asked for (`timeout_in_minute: 5`).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

_COMMON = frozenset(
    {
        "allow_dependency_failure",
        "branches",
        "depends_on",
        "id",
        "identifier",
        "if",
        "key",
        "label",
        "name",
        "type",
    }
)
_BLOCK = _COMMON | {"allowed_teams", "blocked_state", "fields", "prompt"}
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "command": _COMMON
    | {
        "agents",
        "artifact_paths",
        "cache",
        "cancel_on_build_failing",
        "command",
        "commands",
        "concurrency",
        "concurrency_group",
        "concurrency_method",
        "env",
        "if_changed",
        "image",
        "matrix",
        "notify",
        "parallelism",
        "plugins",
        "priority",
        "retry",
        "secrets",
        "signature",
        "skip",
        "soft_fail",
        "timeout_in_minutes",
    },
    "wait": _COMMON | {"continue_on_failure", "wait", "waiter"},
    "block": _BLOCK | {"block", "manual"},
    "input": _BLOCK | {"input"},
    "trigger": _COMMON | {"async", "build", "if_changed", "skip", "soft_fail", "trigger"},
    "group": _COMMON | {"group", "if_changed", "notify", "skip", "steps"},
}
#: The keys that say what kind of step a map is.
KIND_KEYS = frozenset(
    {"command", "commands", "plugins", "wait", "block", "input", "trigger", "group"}
)
#: How alike two keys must be (difflib's ratio) to call one a typo of the other.
SIMILARITY = 0.8


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean "x"?` for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=SIMILARITY)
    return f'; did you mean "{close[0]}"?' if close else ""


def misspelt_keys(keys: Iterable[object], known: Collection[str]) -> list[tuple[str, str]]:
    """`(key, suggestion)` for each key that is not known but is almost a known one."""
    found = []
    for key in keys:
        if not isinstance(key, str) or key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=SIMILARITY)
        if close:
            found.append((key, close[0]))
    return found
