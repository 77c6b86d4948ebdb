"""Relay windows (first/last/after/before) over ordered rows, for many parents in one statement.

Cursors are row keys (keyset pagination), so a page deep in a long history costs what the
first page costs: each parent's rows come from an index range scan with a LIMIT, and the
parents' pages are glued together with UNION ALL (SQLite has no LATERAL). Totals are a
separate, optional query: counting a long history is the expensive part, done only on request.

The pages' rows are read-only views of the model's columns (`RowView`), each value converted
from the database's form (UUIDs, JSON, times) when first read: a page of jobs has some 50
columns of which a query reads a few, and converting them all cost more than the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Numeric,
    Select,
    and_,
    func,
    inspect,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.types import NullType

from kiteline.server.kit import signatures

T = TypeVar("T")

#: SQLite allows 500 terms in one compound SELECT; larger batches take several statements.
PARENTS_PER_STATEMENT = 200

#: (column, descending) pairs; the last one must be unique (the row id) for a total order.
Ordering = Sequence[tuple[InstrumentedAttribute[Any], bool]]


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of a parent's rows, in order, and whether rows lie beyond it."""

    items: list[T]
    has_previous: bool = False
    has_next: bool = False


@dataclass(frozen=True)
class Window:
    """What a connection asks for: `first`/`last` sizes, `after`/`before` row keys.

    As Relay specifies: `after`/`before` narrow the list, then `first` takes from its start
    and `last` from the end of what is left. One of `first` and `last` must be set.
    """

    first: int | None = None
    last: int | None = None
    after: Hashable | None = None
    before: Hashable | None = None

    def __post_init__(self) -> None:
        if self.first is None and self.last is None:
            raise ValueError("a window needs `first` or `last`")

    @property
    def backward(self) -> bool:
        """Taken from the end: the rows are fetched in reverse order."""
        return self.first is None

    @property
    def fetch(self) -> int:
        """Rows to fetch: one more than the page, to learn whether another page follows."""
        size = self.last if self.first is None else self.first
        assert size is not None
        return size + 1

    def cut(self, fetched: list[T]) -> Slice[T]:
        """The page from the rows fetched in this window's direction (at most `fetch`)."""
        if self.first is None:
            assert self.last is not None
            items = list(reversed(fetched[: self.last]))
            return Slice(items, len(fetched) > self.last, self.before is not None)
        items = fetched[: self.first]
        dropped = 0
        if self.last is not None:
            dropped = max(0, len(items) - self.last)
            items = items[dropped:]
        return Slice(items, self.after is not None or dropped > 0, len(fetched) > self.first)

    def slice(self, rows: Sequence[T], key: Callable[[T], Hashable]) -> Slice[T]:
        """The page of a list already in memory and in order (`key` gives cursors' keys)."""
        keys = [key(row) for row in rows]
        if (self.after is not None and self.after not in keys) or (
            self.before is not None and self.before not in keys
        ):
            return Slice([])
        start = keys.index(self.after) + 1 if self.after is not None else 0
        end = keys.index(self.before) if self.before is not None else len(rows)
        narrowed = list(rows[start:end])
        if self.backward:
            narrowed.reverse()
        return self.cut(narrowed[: self.fetch])


def _cursor_condition(
    model: Any, ordering: Ordering, key: Hashable, *, after: bool
) -> ColumnElement[bool]:
    """Rows after (or before) the row whose id is `key`, in `ordering`."""
    cursor_row = aliased(model)
    values = [
        select(getattr(cursor_row, column.key)).where(cursor_row.id == key).scalar_subquery()
        for column, _ in ordering
    ]
    clauses = []
    for index, (column, descending) in enumerate(ordering):
        beyond = column < values[index] if descending == after else column > values[index]
        ties = [earlier == values[i] for i, (earlier, _) in enumerate(ordering[:index])]
        clauses.append(and_(*ties, beyond))
    return or_(*clauses)


def _sorter(window: Window) -> Callable[[Any, bool], Any]:
    """How to sort a column for the window: a backward window reads from the end."""
    flip = window.backward

    def sort(column: Any, descending: bool) -> Any:
        return column.desc() if descending != flip else column.asc()

    return sort


def _windowed(
    query: Select[Any], model: Any, ordering: Ordering, window: Window
) -> tuple[Select[Any], Callable[[Any, bool], Any]]:
    """`query` narrowed by the window's cursors, and how to sort a column for the window."""
    if window.after is not None:
        query = query.where(_cursor_condition(model, ordering, window.after, after=True))
    if window.before is not None:
        query = query.where(_cursor_condition(model, ordering, window.before, after=False))
    return query, _sorter(window)


def _branch(
    model: Any,
    parent: InstrumentedAttribute[Any],
    parent_id: Any,
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    window: Window,
) -> Select[Any]:
    """The ids on one parent's page. Only the ids: each branch's columns are built anew for
    every parent, and the rows are read once, by id, for all of them."""
    query, sort = _windowed(
        select(model.id).where(parent == parent_id, *where), model, ordering, window
    )
    page = (
        query.order_by(*(sort(column, descending) for column, descending in ordering))
        .limit(window.fetch)
        .subquery()
    )
    # SQLite allows ORDER BY and LIMIT in a compound SELECT's members only inside subqueries.
    return select(page.c.id)


def _partitioned(
    model: Any,
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    window: Window,
) -> Select[Any]:
    """The ids on every parent's page, from all the parents' rows numbered within their
    parent: one small statement however many parents, for families that stay small (a
    build's jobs), where reading them all is cheap. Only ids are numbered and sorted: the
    database would otherwise carry every column through the window."""
    query, sort = _windowed(
        select(model.id).where(parent.in_(parent_ids), *where), model, ordering, window
    )
    position = func.row_number().over(
        partition_by=parent,
        order_by=[sort(column, descending) for column, descending in ordering],
    )
    numbered = query.add_columns(position.label("window_position")).subquery()
    return select(numbered.c.id).where(numbered.c.window_position <= window.fetch)


class RowView:
    """A row of a model's table, read-only, with the model's column attributes; each value
    is converted as SQLAlchemy would convert it, on first read."""

    __slots__ = ("__dict__", "_raw")

    def __init__(self, raw: Sequence[Any]) -> None:
        self._raw = raw

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', '?')}>"


class _LazyColumn:
    """One column of a RowView: converted once, then kept in the instance's __dict__ (which
    a non-data descriptor gives way to)."""

    __slots__ = ("index", "name", "process")

    def __init__(self, name: str, index: int, process: Callable[[Any], Any] | None) -> None:
        self.name, self.index, self.process = name, index, process

    def __get__(self, row: RowView | None, owner: type | None = None) -> Any:
        if row is None:
            return self
        value = row._raw[self.index]
        if self.process is not None:
            value = self.process(value)
        row.__dict__[self.name] = value
        return value


#: Per dialect (its JSON and time conversions are the engine's): model -> its RowView class.
_VIEWS: WeakKeyDictionary[Dialect, dict[type, tuple[type[RowView], list[Any]] | None]] = (
    WeakKeyDictionary()
)


def _view_of(model: Any, dialect: Dialect) -> tuple[type[RowView], list[Any]] | None:
    """The model's RowView class and the raw (unconverted) columns to select for it; None
    for a model with a column whose conversion depends on the driver's type code (numeric)."""
    views = _VIEWS.setdefault(dialect, {})
    if model in views:
        return views[model]
    attributes, raw = {}, []
    for index, prop in enumerate(inspect(model).column_attrs):
        column = prop.columns[0]
        if isinstance(column.type, Numeric):
            views[model] = None
            return None
        process = column.type._cached_result_processor(dialect, None)
        attributes[prop.key] = _LazyColumn(prop.key, index, process)
        raw.append(type_coerce(getattr(model, prop.key), NullType()).label(prop.key))
    view = type(f"{model.__name__}View", (RowView,), {"__slots__": (), **attributes})
    views[model] = (view, raw)
    return views[model]


async def pages_per_parent(
    session: AsyncSession,
    model: Any,
    *,
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    window: Window,
    small_families: bool = False,
) -> dict[Any, Slice[Any]]:
    """`window` of each parent's rows (filtered by `where`, in `ordering`).

    Each parent's rows are read with their own LIMIT (a UNION ALL of one branch per parent), so
    a long history costs no more than a short one. With `small_families` every row of the
    parents is numbered in one window instead: far cheaper to build and run when each parent
    has few rows, which is the case for a build's jobs."""
    fetched: dict[Any, list[Any]] = {parent_id: [] for parent_id in parent_ids}
    unique = list(fetched)
    recorder = signatures.recorder_of(session)
    read: list[tuple[Any, list[Any]]] = []  # each statement's page ids and parents
    for start in range(0, len(unique), PARENTS_PER_STATEMENT):
        chunk = unique[start : start + PARENTS_PER_STATEMENT]
        page_ids: Select[Any] | CompoundSelect[Any]
        if small_families:
            page_ids = _partitioned(model, parent, chunk, where, ordering, window)
        else:
            branches = [_branch(model, parent, pid, where, ordering, window) for pid in chunk]
            page_ids = branches[0] if len(branches) == 1 else union_all(*branches)
        read.append((page_ids, chunk))
        sort = _sorter(window)
        order = (parent, *(sort(column, descending) for column, descending in ordering))
        view = _view_of(model, session.get_bind().dialect)
        if view is None:
            statement = select(model).where(model.id.in_(page_ids)).order_by(*order)
            for (item,) in await session.execute(statement):
                fetched[getattr(item, parent.key)].append(item)
            continue
        row_view, columns = view
        rows = await session.execute(
            select(*columns).where(model.id.in_(page_ids)).order_by(*order)
        )
        # Rows come grouped by parent: its column is converted once per parent, not per row.
        parent_column = getattr(row_view, parent.key)
        index, process = parent_column.index, parent_column.process
        by_raw: dict[Any, list[Any]] = {}
        for raw in rows:
            raw_parent = raw[index]
            siblings = by_raw.get(raw_parent)
            if siblings is None:
                parent_id = process(raw_parent) if process is not None else raw_parent
                siblings = by_raw[raw_parent] = fetched[parent_id]
            siblings.append(row_view(raw))
    if recorder is not None:
        # What the pages were cut from: the rows fetched, with the revisions read with them.
        if signatures.revisioned(model):
            for page_ids, chunk in read:
                chunk_rows = [row for parent_id in chunk for row in fetched[parent_id]]
                if (
                    window.after is None
                    and window.before is None
                    and all(len(fetched[parent_id]) < window.fetch for parent_id in chunk)
                ):
                    # Every parent's rows fitted in its page: the page is all of them, so
                    # all of them (cheaper to read: no ordering, no window) sign it.
                    chosen = and_(parent.in_(chunk), *where)
                else:
                    chosen = model.id.in_(page_ids)
                recorder.parts.append(
                    signatures.page_part(model, chosen, _signed(chunk_rows, view))
                )
        else:
            recorder.unsigned = True
    return {parent_id: window.cut(rows) for parent_id, rows in fetched.items()}


def _signed(rows: list[Any], view: tuple[type[RowView], list[Any]] | None) -> list[Any]:
    """Each row's (id, revision) for its page's signature, as read: a RowView's raw values
    (converting a thousand ids would cost more than reading them)."""
    if view is None or not rows or not isinstance(rows[0], RowView):
        return [(row.id, row.revision) for row in rows]
    id_column, revision_column = view[0].id, view[0].revision  # type: ignore[attr-defined]
    at_id, at_revision = id_column.index, revision_column.index
    return [(row._raw[at_id], row._raw[at_revision]) for row in rows]


async def counts_per_parent(
    session: AsyncSession,
    *,
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
) -> dict[Any, int]:
    """How many rows match `where` under each parent (one grouped query)."""
    counts: dict[Any, int] = dict.fromkeys(parent_ids, 0)
    if not counts:
        return counts
    rows = await session.execute(
        select(parent, func.count()).where(parent.in_(list(counts)), *where).group_by(parent)
    )
    for parent_id, count in rows:
        counts[parent_id] = int(count)
    recorder = signatures.recorder_of(session)
    if recorder is not None:
        recorder.parts.append(signatures.count_part(parent, list(counts), where, counts))
    return counts
