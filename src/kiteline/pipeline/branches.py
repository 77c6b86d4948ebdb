"""Branch filter patterns (`main feature/* !feature/beta`), as steps and pipelines use them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def branch_matches(patterns: Iterable[str], branch: str) -> bool:
    """Whether `branch` passes the filter.

    Each entry may hold several space-separated patterns. `*` matches any run of characters
    (slashes included) and `!` negates a pattern. A branch matching any negation is excluded;
    otherwise it must match a positive pattern, unless there are none. No patterns match all.
    """
    words = [word for pattern in patterns for word in pattern.split()]
    negations = [word[1:] for word in words if word.startswith("!")]
    positives = [word for word in words if not word.startswith("!")]
    if any(_compile(pattern).fullmatch(branch) for pattern in negations):
        return False
    return not positives or any(_compile(pattern).fullmatch(branch) for pattern in positives)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
