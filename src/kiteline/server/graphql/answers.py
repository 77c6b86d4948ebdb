"""Whole GraphQL answers, kept and served again while what they were read from is unchanged.

A query's answer is a function of the document, its variables, who asks (their user, their
token's scopes, the organizations they see, all read in every request), the server's address,
the request limits, and the rows its resolvers read. When every one of those reads signed
itself (keyset pages and counts, rows by id with a revision: `kit/signatures.py`), the
rendered answer is kept under a key made of the former, with the signatures of the latter.
A request with the same key reads the signatures again, in one statement, and when they are
unchanged answers with the kept bytes: no execution, no rows, no rendering.

Answers are filled only from read-only transactions (queries) that answered without errors;
any read that cannot sign itself (a short list loaded whole, a lookup by slug, a mutation)
keeps the answer out. Nothing is invalidated by messages: every use compares with what the
shared database holds now, so replicas (and two apps in one process) cannot serve a stale
answer. See docs/decisions/0042.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect

from kiteline.server.kit.signatures import Check, Part, check_for

#: Bounds: answers kept, their bytes in all, and the largest answer kept.
MAX_ANSWERS = 500
MAX_BYTES = 64 * 1024 * 1024
MAX_ANSWER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class KeptAnswer:
    parts: tuple[Part, ...]
    rendered: bytes
    requested: int
    actual: int
    #: The organizations whose budget windows the query entered, in order.
    organizations: tuple[uuid.UUID, ...]
    #: What reads the parts again (built once).
    check: Check = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", check_for(self.parts))


def row_values(row: Any) -> tuple[Any, ...]:
    """Every column of an ORM row, as a hashable key (JSON columns as their repr)."""
    values = []
    for attribute in inspect(type(row)).column_attrs:
        value = getattr(row, attribute.key)
        values.append(value if isinstance(value, Hashable) else repr(value))
    return tuple(values)


def answer_key(
    *,
    query: str,
    variables: dict[str, Any],
    operation_name: str | None,
    user: Any,
    token_id: uuid.UUID,
    scopes: Sequence[str],
    token_organization_id: uuid.UUID | None,
    organizations: Sequence[Any],
    base_url: str,
    limits: Hashable,
) -> Hashable:
    return (
        query,
        json.dumps(variables, sort_keys=True, separators=(",", ":")),
        operation_name,
        row_values(user),
        token_id,
        tuple(sorted(scopes)),
        token_organization_id,
        tuple(row_values(organization) for organization in organizations),
        base_url,
        limits,
    )


class AnswerCache:
    """Least recently used out, within MAX_ANSWERS and MAX_BYTES; one per app."""

    def __init__(
        self,
        *,
        max_answers: int = MAX_ANSWERS,
        max_bytes: int = MAX_BYTES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.max_answers, self.max_bytes = max_answers, max_bytes
        self.max_answer_bytes = max_answer_bytes
        self._kept: OrderedDict[Hashable, KeptAnswer] = OrderedDict()
        self._bytes = 0
        self.hits = 0  # answers served from here
        self.misses = 0  # kept answers found changed
        self.fills = 0

    def get(self, key: Hashable) -> KeptAnswer | None:
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
        return kept

    def put(self, key: Hashable, answer: KeptAnswer) -> None:
        if len(answer.rendered) > self.max_answer_bytes:
            return
        self.discard(key)
        self._kept[key] = answer
        self._bytes += len(answer.rendered)
        self.fills += 1
        while len(self._kept) > self.max_answers or self._bytes > self.max_bytes:
            _, oldest = self._kept.popitem(last=False)
            self._bytes -= len(oldest.rendered)

    def discard(self, key: Hashable) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            self._bytes -= len(old.rendered)

    def __len__(self) -> int:
        return len(self._kept)
