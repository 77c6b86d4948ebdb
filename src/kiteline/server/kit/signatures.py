"""What an answer was read from, and one statement that says whether it is still so.

A `Recorder` put on a session (`record_on`) collects, from the reads that know how to sign
themselves (keyset pages and counts, rows by id), one `Part` each: what the read found,
reduced to the rows' `(id, revision)` (or a parent's count), taken from the very rows the read
returned, and a SELECT that reads the same again. A read that cannot sign itself marks the
recorder `unsigned`. `still_current` later runs every part's SELECT in one statement (a UNION
ALL) and compares.

Revisions are counters every UPDATE of a row bumps (`onupdate`, decision 0010), so a row at
the revision it had is the same row; a page's rows at the revisions they had, in a page read
by the same query, are the same page (the order of a page follows from its rows' columns).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Uuid,
    cast,
    func,
    literal,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "kiteline.signature_recorder"

#: A part's rows: (parent id or None, row id or None, revision or count).
Signed = tuple[uuid.UUID | None, uuid.UUID | None, int]

#: Terms per statement (SQLite allows 500 in one compound SELECT).
PARTS_PER_STATEMENT = 400


@dataclass(frozen=True)
class Part:
    """One signed read: `select` reads (parent, id, number) rows, which must be `expected`
    (as a set) for the read to give what it gave."""

    select: Select[Any]
    expected: frozenset[Signed]


@dataclass
class Recorder:
    parts: list[Part] = field(default_factory=list)
    unsigned: bool = False


def record_on(session: AsyncSession, recorder: Recorder | None) -> None:
    """Record the signed reads made through `session` into `recorder` (None: stop)."""
    if recorder is None:
        session.info.pop(_KEY, None)
    else:
        session.info[_KEY] = recorder


def recorder_of(session: AsyncSession) -> Recorder | None:
    found: Recorder | None = session.info.get(_KEY)
    return found


def _uuid(value: Any, name: str) -> ColumnElement[Any]:
    return type_coerce(value, Uuid()).label(name)


def _no_uuid(name: str) -> ColumnElement[Any]:
    return cast(null(), Uuid()).label(name)


def _number(value: Any) -> ColumnElement[Any]:
    return type_coerce(value, Integer()).label("number")


def revisioned(model: Any) -> bool:
    """Whether the model's rows carry a revision every update bumps."""
    return hasattr(model, "revision") and hasattr(model, "__table__")


def page_part(parent: Any, model: Any, page_ids: Any, fetched: dict[Any, list[Any]]) -> Part:
    """Rows fetched for the parents' pages (`page_ids`: the subquery that chose them)."""
    query = select(_uuid(parent, "parent"), _uuid(model.id, "id"), _number(model.revision)).where(
        model.id.in_(page_ids)
    )
    expected = frozenset(
        (parent_id, row.id, row.revision) for parent_id, rows in fetched.items() for row in rows
    )
    return Part(query, expected)


def count_part(
    parent: Any, parent_ids: Sequence[Any], where: Sequence[Any], counts: dict[Any, int]
) -> Part:
    query = (
        select(_uuid(parent, "parent"), _no_uuid("id"), _number(func.count()))
        .where(parent.in_(list(parent_ids)), *where)
        .group_by(parent)
    )
    return Part(query, frozenset((key, None, n) for key, n in counts.items() if n))


def rows_part(model: Any, ids: Sequence[uuid.UUID], rows: Sequence[Any]) -> Part:
    """Rows read by id (ids not found included: they must stay so)."""
    query = select(_no_uuid("parent"), _uuid(model.id, "id"), _number(model.revision)).where(
        model.id.in_(list(ids))
    )
    return Part(query, frozenset((None, row.id, row.revision) for row in rows))


async def still_current(session: AsyncSession, parts: Sequence[Part]) -> bool:
    """Whether every part reads what it read (one statement per PARTS_PER_STATEMENT)."""
    found: list[set[Signed]] = [set() for _ in parts]
    for start in range(0, len(parts), PARTS_PER_STATEMENT):
        chunk = parts[start : start + PARTS_PER_STATEMENT]
        selects = [
            part.select.add_columns(literal(start + offset, Integer()).label("part"))
            for offset, part in enumerate(chunk)
        ]
        statement = selects[0] if len(selects) == 1 else union_all(*selects)
        for parent_id, row_id, number, index in await session.execute(statement):
            found[index].add((parent_id, row_id, number))
    return all(part.expected == seen for part, seen in zip(parts, found, strict=True))
