"""kit/collector.py: while a hold is engaged the garbage collector makes no full pass; the
thresholds come back once the holds end and their linger lapses, or after the longest hold
allowed. The lapse is noticed at the next collection, so each test makes one."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kiteline.server.kit import collector


@pytest.fixture(autouse=True)
def thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int, int]]:
    monkeypatch.setattr(collector, "LINGER_SECONDS", 0.0)
    before = gc.get_threshold()
    yield before
    collector._deferral.restore()
    gc.set_threshold(*before)


def test_a_hold_puts_full_collections_out_of_reach_and_they_come_back_after_it(
    thresholds: tuple[int, int, int],
) -> None:
    with collector.Hold(engaged=True):
        gc.collect(0)
        assert collector.full_collections_held()
        assert gc.get_threshold() == (*thresholds[:2], 2**31 - 1)
    gc.collect(0)
    assert not collector.full_collections_held()
    assert gc.get_threshold() == thresholds


def test_a_hold_not_engaged_changes_nothing_until_it_is(thresholds: tuple[int, int, int]) -> None:
    with collector.Hold() as hold:
        assert not collector.full_collections_held()
        hold.engage()
        hold.engage()  # idempotent: one release at the end
        assert collector.full_collections_held()
    gc.collect(0)
    assert gc.get_threshold() == thresholds


def test_full_collections_stay_held_until_the_last_of_several_holds_ends(
    thresholds: tuple[int, int, int],
) -> None:
    outer = collector.Hold(engaged=True)
    with collector.Hold(engaged=True):
        pass
    gc.collect(0)
    assert collector.full_collections_held()
    outer.__exit__(None, None, None)
    gc.collect(0)
    assert gc.get_threshold() == thresholds


def test_the_linger_keeps_them_held_after_the_hold_ends(
    monkeypatch: pytest.MonkeyPatch, thresholds: tuple[int, int, int]
) -> None:
    monkeypatch.setattr(collector, "LINGER_SECONDS", 3600.0)
    with collector.Hold(engaged=True):
        pass
    gc.collect(0)
    assert collector.full_collections_held()


def test_a_hold_past_the_longest_allowed_lets_one_full_collection_through(
    monkeypatch: pytest.MonkeyPatch, thresholds: tuple[int, int, int]
) -> None:
    monkeypatch.setattr(collector, "MAX_HOLD_SECONDS", 0.0)
    with collector.Hold(engaged=True):
        gc.collect(0)
        assert gc.get_threshold() == thresholds
        # A hold engaged after that holds them off again.
        monkeypatch.setattr(collector, "MAX_HOLD_SECONDS", 3600.0)
        with collector.Hold(engaged=True):
            assert collector.full_collections_held()
