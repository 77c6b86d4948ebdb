"""kit/slices.py: `release` lets a list's objects go a slice at a time."""

from __future__ import annotations

from kiteline.server.kit import slices
from tests.support.run_async import run_async


def test_release_empties_the_list_it_is_given() -> None:
    items = [object() for _ in range(1001)]
    run_async(lambda: slices.release(items))
    assert items == []
