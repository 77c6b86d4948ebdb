"""What the resolvers of one GraphQL request share: its transaction and caller, the batching
loaders that keep a query's SQL statements few, and the budgets it spends from.

Resolvers run concurrently while one AsyncSession allows one statement at a time, so every
database call goes through `read` or `write`, which take turns.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import strawberry
from fastapi import Request
from graphql import DocumentNode
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from kiteline.server.graphql.budget import BudgetGate
from kiteline.server.kit import signatures
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.tokens.auth import Principal

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
R = TypeVar("R", bound="OrganizationOwned")

#: Loads many keys at once: `fetch(session, keys)` maps each found key to its value.
Fetch = Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]]
#: The `get_many(session, ids)` that every domain service has.
GetMany = Callable[[AsyncSession, set[uuid.UUID]], Awaitable[Mapping[uuid.UUID, V]]]


class OrganizationOwned(Protocol):
    @property
    def organization_id(self) -> uuid.UUID: ...


@dataclass
class GraphQLContext:
    request: Request
    session: AsyncSession
    principal: Principal
    organizations: list[Organization]  # the caller's: all that they may see
    budget: BudgetGate
    urls: Urls
    document: DocumentNode  # parsed and validated by the endpoint, run by the schema
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)
    _remembered: dict[Hashable, tuple[Sequence[Any], Any]] = field(default_factory=dict)

    def remembered(self, key: Hashable, nodes: Sequence[Any], compute: Callable[[], T]) -> T:
        """`compute()`, once per request for `key`, which names `nodes` of the document by
        their ids (kept here with the answer, so those ids can't be reused meanwhile): what a
        field's selection asks for, the same under each of a hundred parents."""
        found = self._remembered.get(key)
        if found is not None:
            return cast(T, found[1])
        value = compute()
        self._remembered[key] = (list(nodes), value)
        return value

    async def read(
        self, query: Callable[[AsyncSession], Awaitable[V]], *, signed: bool = False
    ) -> V:
        """`query`'s answer. Unless `signed` (a read that signs what it reads: keyset pages
        and counts, rows by id), the answer is marked as one that cannot be kept."""
        async with self._turn:
            recorder = signatures.recorder_of(self.session)
            if recorder is None:
                return await query(self.session)
            if not signed:
                recorder.unsigned = True
                return await query(self.session)
            parts = len(recorder.parts)
            value = await query(self.session)
            if len(recorder.parts) == parts:
                recorder.unsigned = True  # it read nothing, or something it could not sign
            return value

    async def write(self, change: Callable[[AsyncSession], Awaitable[V]]) -> V:
        """A mutation's change, in a savepoint: a refused mutation leaves nothing behind, and
        the document's other mutations keep theirs. Loaded data is forgotten afterwards."""
        async with self._turn:
            recorder = signatures.recorder_of(self.session)
            if recorder is not None:
                recorder.unsigned = True
            self._loaders.clear()
            async with self.session.begin_nested():
                return await change(self.session)

    def loader(
        self,
        key: Hashable,
        fetch: Fetch[K, V],
        then: Callable[[Mapping[K, V]], Awaitable[None]] | None = None,
        *,
        signed: bool = False,
    ) -> DataLoader[K, V | None]:
        """The request's loader named `key`: keys loaded in the same tick share one fetch.

        `then` (given by whoever creates the loader) runs after each fetch, before the values
        are handed out: loads it makes are done when every waiting caller resumes. `signed`:
        as for `read`."""
        found = self._loaders.get(key)
        if found is None:

            async def load(keys: list[K]) -> Sequence[V | None]:
                values = await self.read(lambda session: fetch(session, keys), signed=signed)
                if then is not None:
                    await then(values)
                return [values.get(k) for k in keys]

            found = self._loaders[key] = DataLoader(load_fn=load)
        return found

    async def load(self, get_many: GetMany[V], id_: uuid.UUID | None) -> V | None:
        """The row with this id, batched with every other load through `get_many`."""
        if id_ is None:
            return None
        return await self._get_many_loader(get_many).load(id_)

    def _get_many_loader(self, get_many: GetMany[V]) -> DataLoader[uuid.UUID, V | None]:
        return self.loader(get_many, partial(_signed_get_many, get_many), signed=True)

    async def prefetch(self, get_many: GetMany[V], ids: Iterable[uuid.UUID | None]) -> None:
        """Load these rows now, in one batch with every other load through `get_many`, so
        that `loaded` finds them. A failure is left for the fields that ask to report."""
        wanted = {id_ for id_ in ids if id_ is not None}
        if wanted:
            with suppress(Exception):
                await self._get_many_loader(get_many).load_many(wanted)

    def loaded(
        self, get_many: GetMany[V], id_: uuid.UUID | None, wrap: Callable[[V], T]
    ) -> T | None:
        """`wrap(row)` for the row with this id, at once when this request has already
        loaded it (see `prefetch`), else as an awaitable, which graphql-core awaits: a field
        of every item of a page then costs no coroutine and no task per item.

        Typed as the value for the field's annotation (strawberry's schema reads it)."""
        if id_ is None:
            return None
        loader = self._get_many_loader(get_many)
        future = loader.cache_map.get(id_)
        done = future is not None and future.done() and not future.cancelled()
        if done and future is not None and future.exception() is None:
            row = future.result()
            return wrap(row) if row is not None else None

        async def later() -> T | None:
            row = await loader.load(id_)
            return wrap(row) if row is not None else None

        return cast("T | None", later())

    @property
    def organization_ids(self) -> list[uuid.UUID]:
        return [organization.id for organization in self.organizations]

    def sees(self, organization_id: uuid.UUID) -> bool:
        return any(organization.id == organization_id for organization in self.organizations)

    async def reveal(self, row: R | None) -> R | None:
        """`row` if the caller may see it (else None, as for a missing one), its organization's
        budget checked: where a request first reaches an organization's data."""
        if row is None or not self.sees(row.organization_id):
            return None
        await self.budget.enter_organization(row.organization_id)
        return row


async def _signed_get_many(
    get_many: GetMany[V], session: AsyncSession, ids: list[uuid.UUID]
) -> Mapping[uuid.UUID, V]:
    """`get_many`, its rows signed by their revisions when their model has them."""
    rows = await get_many(session, set(ids))
    recorder = signatures.recorder_of(session)
    if recorder is not None and rows:
        models = {type(row) for row in rows.values()}
        model = models.pop()
        if not models and signatures.revisioned(model):
            recorder.parts.append(signatures.rows_part(model, ids, list(rows.values())))
    return rows


Info = strawberry.Info[GraphQLContext, None]
