"""Kiteline's execution context and shortcuts answer exactly what strawberry and graphql-core
answer by themselves: the same data, and the same errors at the same paths, nulls
propagating as the spec says (no server: two schemas built from the same types)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from kiteline.server.graphql.fast.execution import KitelineExecutionContext
from kiteline.server.graphql.fast.shortcuts import take_shortcuts
from kiteline.server.graphql.scalars import SCALARS


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


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Cat(Named):
    lives: int


@strawberry.type
class Dog(Named):
    good: bool


@strawberry.type
class Stranger:
    """In no union and implementing no interface: where a Pet or a Named is expected, an
    error."""

    name: str


Pet = Annotated[Cat | Dog, strawberry.union("Pet")]


async def _later(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


@strawberry.type
class Box:
    """Object fields read as attributes: what the execution context completes itself."""

    number: int
    item: Item | None
    required_item: Item
    items: list[Item | None]
    strict_items: list[Item]
    pet: Pet | None
    pets: list[Pet | None] | None
    named: list[Named | None]
    cat: Cat | None


def _item(n: int) -> Item:
    return Item(name=f"item {n}", maybe=None if n % 2 else "yes", count=n)


def _box(n: int) -> Box:
    """Box 0 is ordinary; the others each hold something graphql-core must handle."""
    strange: Any = Stranger(name="who")
    box = Box(
        number=n,
        item=_item(n),
        required_item=_item(n + 1),
        items=[_item(0), None, _item(2)],
        strict_items=[_item(1), _item(2)],
        pet=Cat(name="tom", lives=9),
        pets=[Dog(name="rex", good=True), None, Cat(name="kit", lives=3)],
        named=[Dog(name="fido", good=False), Cat(name="felix", lives=7), None],
        cat=Cat(name="garfield", lives=1),
    )
    if n == 1:
        box.strict_items = [_item(1), None]  # type: ignore[list-item]
        box.pet = strange
        box.cat = Dog(name="not a cat", good=True)  # type: ignore[assignment]
    elif n == 2:
        box.item = _later(_item(7))
        box.items = [_later(_item(5)), _item(6), None, _later(None)]
        box.pets = [strange, Dog(name="odie", good=True)]
        box.named = [strange]
        box.strict_items = _later([_item(3)])  # type: ignore[assignment]
    elif n == 3:
        box.required_item = None  # type: ignore[assignment]
        box.pets = None
    return box


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return [_item(n) for n in range(3)]

    @strawberry.field
    def boxes(self) -> list[Box | None]:
        return [_box(n) for n in range(4)]


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query, scalar_overrides=SCALARS)
    ours = strawberry.Schema(
        query=Query, scalar_overrides=SCALARS, execution_context_class=KitelineExecutionContext
    )
    take_shortcuts(ours)
    return plain, ours


def _answer(
    schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = asyncio.run(schema.execute(query, variable_values=variables))
    errors = sorted(
        (error.formatted for error in result.errors or []), key=lambda error: str(error["path"])
    )
    return {"data": result.data, "errors": errors}


def _same_answer(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    plain, ours = _schemas()
    expected = _answer(plain, query, variables)
    assert _answer(ours, query, variables) == expected
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


def test_objects_and_lists_of_objects_answer_as_graphql_core_does() -> None:
    answer = _same_answer(
        """{ boxes {
            number
            item { name count }
            requiredItem { name }
            items { name color }
            pet { __typename ... on Cat { name lives } ... on Dog { name good } }
            pets { __typename ... on Dog { good } ... on Named { name } }
            named { __typename name ... on Cat { lives } }
            cat { name lives }
            strictItems { count }
        } }"""
    )
    boxes = answer["data"]["boxes"]
    assert boxes[0] == {
        "number": 0,
        "item": {"name": "item 0", "count": 0},
        "requiredItem": {"name": "item 1"},
        "items": [{"name": "item 0", "color": "BLUE"}, None, {"name": "item 2", "color": "BLUE"}],
        "pet": {"__typename": "Cat", "name": "tom", "lives": 9},
        "pets": [
            {"__typename": "Dog", "good": True, "name": "rex"},
            None,
            {"__typename": "Cat", "name": "kit"},
        ],
        "named": [
            {"__typename": "Dog", "name": "fido"},
            {"__typename": "Cat", "name": "felix", "lives": 7},
            None,
        ],
        "cat": {"name": "garfield", "lives": 1},
        "strictItems": [{"count": 1}, {"count": 2}],
    }
    # A null in a list of non-nulls nulls the box; so does a null for a non-null object.
    assert boxes[1] is None and boxes[3] is None
    assert boxes[2]["item"] == {"name": "item 7", "count": 7}  # an awaitable value
    assert boxes[2]["items"] == [
        {"name": "item 5", "color": "RED"},
        {"name": "item 6", "color": "BLUE"},
        None,
        None,
    ]
    assert boxes[2]["pets"] == [None, {"__typename": "Dog", "good": True, "name": "odie"}]
    assert boxes[2]["named"] == [None]
    assert boxes[2]["strictItems"] == [{"count": 3}]
    assert {tuple(error["path"]) for error in answer["errors"]} == {
        ("boxes", 1, "strictItems", 1),
        ("boxes", 1, "pet"),
        ("boxes", 1, "cat", "lives"),  # a Dog is a Named: strawberry lets it be a Cat
        ("boxes", 2, "pets", 0),
        ("boxes", 2, "named", 0),
        ("boxes", 3, "requiredItem"),
    }


def test_errors_below_objects_null_the_nearest_nullable_parent() -> None:
    answer = _same_answer(
        "{ boxes { number item { required } items { broken } strictItems { required } } }"
    )
    assert answer["data"]["boxes"] == [None, None, None, None]
    assert answer["errors"][0]["path"] == ["boxes", 0, "item", "required"]
    assert all(error["message"] for error in answer["errors"])


def test_arguments_under_many_parents_answer_as_graphql_core_does() -> None:
    answer = _same_answer(
        "query ($s: String!) { items { withArgument(suffix: $s) again: withArgument } }",
        {"s": "?"},
    )
    assert answer["data"]["items"][2] == {"withArgument": "item 2?", "again": "item 2!"}
