"""Kiteline's execution context and shortcuts answer exactly what strawberry and graphql-core
answer by themselves: the same data, and the same errors at the same paths, nulls
propagating as the spec says (no server: two schemas built from the same types)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry

from kiteline.server.graphql.execution import KitelineExecutionContext
from kiteline.server.graphql.scalars import SCALARS
from kiteline.server.graphql.shortcuts import take_shortcuts


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    maybe: str | None
    count: int

    @strawberry.field
    def color(self) -> Color:
        return Color.RED if self.count % 2 else Color.BLUE

    @strawberry.field
    def at(self) -> datetime | None:
        return datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC) if self.count else None

    @strawberry.field
    def broken(self) -> str | None:
        raise ValueError(f"item {self.count} is broken")

    @strawberry.field
    def required(self) -> str:
        return None  # type: ignore[return-value]  # a resolver breaking its promise

    @strawberry.field
    def not_an_int(self) -> int | None:
        return "many"  # type: ignore[return-value]

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        return f"later {self.count}"

    @strawberry.field
    def with_argument(self, suffix: str = "!") -> str:
        return self.name + suffix


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return [Item(name=f"item {n}", maybe=None if n % 2 else "yes", count=n) for n in range(3)]


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query, scalar_overrides=SCALARS)
    ours = strawberry.Schema(
        query=Query, scalar_overrides=SCALARS, execution_context_class=KitelineExecutionContext
    )
    take_shortcuts(ours)
    return plain, ours


def _answer(schema: strawberry.Schema, query: str) -> dict[str, Any]:
    result = asyncio.run(schema.execute(query))
    errors = sorted(
        (error.formatted for error in result.errors or []), key=lambda error: str(error["path"])
    )
    return {"data": result.data, "errors": errors}


def _same_answer(query: str) -> dict[str, Any]:
    plain, ours = _schemas()
    expected = _answer(plain, query)
    assert _answer(ours, query) == expected
    return expected


def test_leaf_fields_answer_as_graphql_core_does() -> None:
    answer = _same_answer(
        '{ items { name maybe count color at later withArgument(suffix: "?") __typename } }'
    )
    assert answer["errors"] == []
    assert answer["data"]["items"][1] == {
        "name": "item 1",
        "maybe": None,
        "count": 1,
        "color": "RED",
        "at": "2024-01-02T03:04:05.678Z",
        "later": "later 1",
        "withArgument": "item 1?",
        "__typename": "Item",
    }


def test_a_resolver_error_nulls_the_field_with_its_path() -> None:
    answer = _same_answer("{ items { name broken } }")
    assert [error["path"] for error in answer["errors"]] == [
        ["items", n, "broken"] for n in range(3)
    ]
    assert answer["data"]["items"][0] == {"name": "item 0", "broken": None}


def test_a_null_for_a_non_null_field_nulls_the_parent() -> None:
    answer = _same_answer("{ items { name required } }")
    assert answer["data"] == {"items": [None, None, None]}
    assert (
        answer["errors"][0]["message"] == "Cannot return null for non-nullable field Item.required."
    )


def test_a_value_its_scalar_refuses_is_an_error() -> None:
    answer = _same_answer("{ items { notAnInt } }")
    assert answer["data"] == {"items": [{"notAnInt": None}] * 3}
    assert len(answer["errors"]) == 3
