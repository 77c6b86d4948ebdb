"""The slots through which domain GraphQL modules reach one another (no server)."""

from __future__ import annotations

import pytest

from kiteline.server.graphql import registry
from kiteline.server.graphql.schema import schema_for


def test_every_slot_is_filled_once_the_schema_is_built() -> None:
    schema_for("stock")
    assert [each.name for each in registry.SLOTS if not each.provided] == []
    registry.check_filled()


def _declared(number: int, /) -> str:
    raise NotImplementedError


def test_a_slot_calls_what_was_provided_and_refuses_a_second() -> None:
    slot = registry.slot(_declared)
    with pytest.raises(RuntimeError, match="GraphQL slot _declared is empty"):
        slot(1)
    slot.provide(lambda number: f"#{number}")
    assert slot(7) == "#7"
    with pytest.raises(RuntimeError, match="GraphQL slot _declared is provided twice"):
        slot.provide(str)
