"""Relay connections as Buildkite shapes them (`edges`, `pageInfo`, `count`), their arguments,
and their batched loading: one statement for the pages of every parent, another for the counts
only when `count` is asked for."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
)
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.graphql.context import Info
from kiteline.server.kit.errors import BadRequest
from kiteline.server.kit.keyset import Slice, Window

T = TypeVar("T")
R = TypeVar("R")

#: Buildkite's largest page (and what a connection without `first` or `last` returns).
MAX_PAGE_SIZE = 500
#: `Build.metaData` is the documented exception.
MAX_META_DATA_PAGE_SIZE = 10_000

_CURSOR_PREFIX = "cursor:"


def _edge_cursor(self: Edge[Any]) -> str:
    return encode_cursor(self.key(self.item))


def _start_cursor(self: PageInfo) -> str | None:
    edges = self.edges
    return _edge_cursor(edges[0]) if edges and edges[0] else None


def _end_cursor(self: PageInfo) -> str | None:
    edges = self.edges
    return _edge_cursor(edges[-1]) if edges and edges[-1] else None


@strawberry.type(name="PageInfo")
class PageInfo:
    """Cursors are encoded only when asked for, from the edges' keys."""

    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None = strawberry.field(resolver=_start_cursor)
    end_cursor: str | None = strawberry.field(resolver=_end_cursor)
    edges: strawberry.Private[Sequence[Edge[Any] | None]]


@strawberry.interface(name="Connection")
class ConnectionInterface:
    counter: strawberry.Private[Callable[[], Awaitable[int]]]
    page_info: PageInfo | None

    @strawberry.field(description="The total number of items, whatever the page")
    async def count(self) -> int:
        return await self.counter()


@strawberry.type
class Edge(Generic[T]):
    """A node and the item it was made from, whose key (`key(item)`) is encoded as the
    edge's cursor only when asked for."""

    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: T | None
    item: strawberry.Private[Any]
    key: strawberry.Private[Callable[[Any], Hashable]]


@strawberry.type
class Connection(ConnectionInterface, Generic[T]):
    edges: list[Edge[T] | None] | None


def encode_cursor(key: Hashable) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIX}{key}".encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"{cursor!r} is not a cursor from this connection") from error
    if not text.startswith(_CURSOR_PREFIX):
        raise BadRequest(f"{cursor!r} is not a cursor from this connection")
    return text[len(_CURSOR_PREFIX) :]


def row_key(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise BadRequest("The cursor is not one from this connection") from error


def window_from(
    first: int | None,
    last: int | None,
    after: str | None,
    before: str | None,
    *,
    max_size: int = MAX_PAGE_SIZE,
    key: Callable[[str], Hashable] = row_key,
) -> Window:
    """Connection arguments as a window: sizes capped at `max_size` (as graphql-ruby caps
    them), `max_size` items when neither `first` nor `last` is given."""
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadRequest(f"Argument '{name}' must not be negative")
    if first is None and last is None:
        first = max_size
    return Window(
        first=min(first, max_size) if first is not None else None,
        last=min(last, max_size) if last is not None else None,
        after=key(decode_cursor(after)) if after else None,
        before=key(decode_cursor(before)) if before else None,
    )


def connection(
    page: Slice[R],
    wrap: Callable[[R], T],
    *,
    key: Callable[[R], Hashable],
    count: Callable[[], Awaitable[int]],
    kind: type[Connection[Any]] = Connection,
) -> Connection[T]:
    edges: list[Edge[T] | None] = [Edge(node=wrap(item), item=item, key=key) for item in page.items]
    return kind(
        counter=count,
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next, has_previous_page=page.has_previous, edges=edges
        ),
    )


def row_edge(row: Any, node: T) -> Edge[T]:
    """The edge of a row's node, its cursor made from the row's id."""
    return Edge(node=node, item=row, key=_row_id)


def _fields(
    selections: Iterable[SelectionNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set.selections, fragments)


def _below(
    nodes: Iterable[FieldNode], name: str, fragments: Mapping[str, FragmentDefinitionNode]
) -> list[FieldNode]:
    """The fields called `name` selected under any of `nodes`."""
    selections = (
        selection
        for node in nodes
        if node.selection_set is not None
        for selection in node.selection_set.selections
    )
    return [field for field in _fields(selections, fragments) if field.name.value == name]


def selects_items(info: Info) -> bool:
    """Whether the connection's edges (or pageInfo) are asked for, or only its `count`."""
    # The document's own nodes: strawberry's `selected_fields` converts the whole subtree
    # below, on every one of the many connections a query may open.
    raw = info._raw_info
    return info.context.remembered(
        ("selects_items", *map(id, raw.field_nodes)),
        raw.field_nodes,
        lambda: any(_below(raw.field_nodes, name, raw.fragments) for name in ("edges", "pageInfo")),
    )


def selects_on_nodes(info: Info, name: str) -> bool:
    """Whether `edges { node { <name> } }` is asked for (in any fragment)."""
    raw, fragments = info._raw_info, info._raw_info.fragments

    def selects() -> bool:
        nodes = _below(_below(raw.field_nodes, "edges", fragments), "node", fragments)
        return bool(_below(nodes, name, fragments))

    return info.context.remembered(
        ("selects_on_nodes", name, *map(id, raw.field_nodes)), raw.field_nodes, selects
    )


PageFetch = Callable[[AsyncSession, list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Slice[R]]]]
CountFetch = Callable[[AsyncSession, list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, int]]]


async def paged(
    info: Info,
    key: Hashable,
    parent_id: uuid.UUID,
    *,
    pages: PageFetch[R],
    counts: CountFetch,
    wrap: Callable[[R], T],
    kind: type[Connection[Any]] = Connection,
    prefetch: Mapping[str, Callable[[list[R]], Awaitable[None]]] | None = None,
) -> Connection[T]:
    """A connection from rows paged in SQL, batched with its siblings' under `key` (which
    must identify every argument that `pages` and `counts` were made with).

    `prefetch` names fields of the nodes whose rows are better loaded with the pages (of all
    the siblings, in one batch, before any of them resumes) than by each node: given the
    pages' rows, it loads what that field reads."""
    ctx = info.context
    page: Slice[R] | None = None
    if selects_items(info):
        wanted = [fetch for name, fetch in (prefetch or {}).items() if selects_on_nodes(info, name)]

        async def then(slices: Mapping[uuid.UUID, Slice[R]]) -> None:
            rows = [row for found in slices.values() for row in found.items]
            for fetch in wanted:
                await fetch(rows)

        loader = ctx.loader(("pages", key), pages, then=then if wanted else None, signed=True)
        page = await loader.load(parent_id)

    async def count() -> int:
        return await ctx.loader(("counts", key), counts, signed=True).load(parent_id) or 0

    return connection(page or Slice([]), wrap, key=_row_id, count=count, kind=kind)


ListFetch = Callable[[AsyncSession, list[Any]], Awaitable[Mapping[Any, Sequence[R]]]]


async def listed(
    info: Info,
    key: Hashable,
    parent_id: Hashable,
    *,
    fetch: ListFetch[R],
    window: Window,
    wrap: Callable[[R], T],
    item_key: Callable[[R], Hashable] | None = None,
) -> Connection[T]:
    """A connection over a parent's short list, loaded whole (batched under `key`) and
    paged in memory."""
    items = await info.context.loader(("lists", key), fetch).load(parent_id) or []
    item_key = item_key or _row_id

    async def count() -> int:
        return len(items)

    return connection(window.slice(items, item_key), wrap, key=item_key, count=count)


def _row_id(row: Any) -> Hashable:
    key: Hashable = row.id
    return key
