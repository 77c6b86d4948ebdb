"""What an answer was read from, and one statement that says whether it is still so.

A `Recorder` put on a session (`record_on`) collects, from the reads that know how to sign
themselves (keyset pages and counts, rows by id), one `Part` each: what the read found,
reduced to the rows' `(id, revision)` (or a parent's count), taken from the very rows the read
returned, and a SELECT that reads the same again. A read that cannot sign itself marks the
recorder `unsigned`. `still_current` later runs every part's SELECT in one statement (a UNION
ALL, each part aggregated into one string) and compares.

Revisions are counters every UPDATE of a row bumps (`onupdate`, decision 0010), so a row at
the revision it had is the same row; a page's rows at the revisions they had, in a page read
by the same query, are the same page (the order of a page follows from its rows' columns).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
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
from sqlalchemy.sql import Executable
from sqlalchemy.types import NullType

_KEY = "kiteline.signature_recorder"

#: A part's rows: (parent id or None, row id or None, revision or count), ids as `raw_id`s.
Signed = tuple[str | None, str | None, int]

#: Terms per statement (SQLite allows 500 in one compound SELECT).
PARTS_PER_STATEMENT = 400


def raw_id(value: Any) -> str | None:
    """A UUID as 32 hex digits: as SQLite stores it (so read as is), else its `hex` (what
    PostgreSQL's driver gives is a UUID object)."""
    if value is None or type(value) is str:
        return value
    hex_digits: str = value.hex
    return hex_digits


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


def _raw(value: Any, name: str) -> ColumnElement[Any]:
    """The column as the database holds it (no conversion of each row's value)."""
    return type_coerce(value, NullType()).label(name)


def _none(name: str) -> ColumnElement[Any]:
    # Typed for PostgreSQL's UNION, unconverted for ours: a UNION's columns are converted as
    # its first SELECT's are, and the first may be of any part.
    return type_coerce(cast(null(), Uuid()), NullType()).label(name)


def _number(value: Any) -> ColumnElement[Any]:
    return type_coerce(value, Integer()).label("number")


def revisioned(model: Any) -> bool:
    """Whether the model's rows carry a revision every update bumps."""
    return hasattr(model, "revision") and hasattr(model, "__table__")


def page_part(model: Any, chosen: ColumnElement[bool], fetched: Iterable[tuple[Any, int]]) -> Part:
    """The `(id, revision)` of the rows fetched for some parents' pages (`chosen`: the
    condition that chooses them). A row's parent is not part of it: moving a row to another
    parent would be an UPDATE."""
    query = select(_none("parent"), _raw(model.id, "id"), _number(model.revision)).where(chosen)
    return Part(query, frozenset((None, raw_id(row_id), revision) for row_id, revision in fetched))


def count_part(
    parent: Any, parent_ids: Sequence[Any], where: Sequence[Any], counts: dict[Any, int]
) -> Part:
    query = (
        select(_raw(parent, "parent"), _none("id"), _number(func.count()))
        .where(parent.in_(list(parent_ids)), *where)
        .group_by(parent)
    )
    return Part(query, frozenset((raw_id(key), None, n) for key, n in counts.items() if n))


def rows_part(model: Any, ids: Sequence[uuid.UUID], rows: Sequence[Any]) -> Part:
    """Rows read by id (ids not found included: they must stay so)."""
    query = select(_none("parent"), _raw(model.id, "id"), _number(model.revision)).where(
        model.id.in_(list(ids))
    )
    return Part(query, frozenset((None, raw_id(row.id), row.revision) for row in rows))


def sign_lookup(
    session: AsyncSession, model: Any, condition: ColumnElement[bool], row: Any | None
) -> None:
    """Sign a row found (or not) by `condition`, if a recorder is on the session: the same
    condition must find the same row at the same revision (or still nothing)."""
    recorder = recorder_of(session)
    if recorder is None:
        return
    query = select(_none("parent"), _raw(model.id, "id"), _number(model.revision)).where(condition)
    found = () if row is None else ((None, raw_id(row.id), row.revision),)
    recorder.parts.append(Part(query, frozenset(found)))


def _as_text(value: Any) -> ColumnElement[str]:
    return func.coalesce(cast(value, String()), "")


def _aggregated(part: Part, index: int) -> Select[int, str]:
    """One row for the part: its index and its rows as one string, "parent:id:number" joined
    by commas in any order (a part with no rows: NULL)."""
    rows = part.select.subquery()
    row = _as_text(rows.c.parent) + ":" + _as_text(rows.c.id) + ":" + cast(rows.c.number, String())
    return select(literal(index, Integer()).label("part"), func.aggregate_strings(row, ","))


def _signed_text(signed: Signed) -> str:
    parent_id, row_id, number = signed
    return f"{parent_id or ''}:{row_id or ''}:{number}"


@dataclass(frozen=True)
class Check:
    """What reads every part again, built once per kept answer: one UNION ALL per
    PARTS_PER_STATEMENT parts, each part aggregated into one row (the rows come back as one
    string per part, not as a Python row each), and what each part must read."""

    statements: tuple[Executable, ...]
    expected: tuple[frozenset[str], ...]


def check_for(parts: Sequence[Part]) -> Check:
    built: list[Executable] = []
    for start in range(0, len(parts), PARTS_PER_STATEMENT):
        chunk = parts[start : start + PARTS_PER_STATEMENT]
        selects = [_aggregated(part, start + offset) for offset, part in enumerate(chunk)]
        built.append(selects[0] if len(selects) == 1 else union_all(*selects))
    expected = tuple(frozenset(map(_signed_text, part.expected)) for part in parts)
    return Check(tuple(built), expected)


async def still_current(session: AsyncSession, check: Check) -> bool:
    """Whether every part reads what it read. PostgreSQL writes a UUID as text with dashes
    (SQLite holds the 32 digits): dashes are dropped, as nothing else in a row has one."""
    seen = 0
    dashed = session.get_bind().dialect.name == "postgresql"
    for statement in check.statements:
        for index, joined in (await session.execute(statement)).all():
            if dashed and joined:
                joined = joined.replace("-", "")
            rows = frozenset(joined.split(",")) if joined else frozenset()
            if rows != check.expected[index]:
                return False
            seen += 1
    return seen == len(check.expected)
