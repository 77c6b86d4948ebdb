"""The outbox writes a transaction's events at its outermost commit, in the order they were
emitted; a savepoint's rollback drops its own events and nothing emitted before it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events.models import Event
from kiteline.server.events.names import EventName
from kiteline.server.events.service import emit
from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.kit.migrate import upgrade
from tests.support.run_async import run_async

ORG = uuid.uuid4()


class Undone(Exception):
    pass


def test_savepoints_keep_the_order_and_drop_only_their_own_events(database_url: str) -> None:
    async def run() -> list[int]:
        engine = create_engine(database_url)
        await upgrade(engine)
        sessions = create_sessionmaker(engine)

        def note(session: AsyncSession, n: int) -> None:
            emit(
                session, EventName.BUILD_RUNNING, organization_id=ORG, subject_id=ORG, data={"n": n}
            )

        try:
            async with transaction(sessions) as session:
                note(session, 1)
                with pytest.raises(Undone):
                    async with session.begin_nested():
                        note(session, 2)
                        raise Undone
                async with session.begin_nested():
                    note(session, 3)
                    with pytest.raises(Undone):
                        async with session.begin_nested():
                            note(session, 4)
                            raise Undone
                    note(session, 5)
                note(session, 6)
            with pytest.raises(Undone):
                async with transaction(sessions) as session:
                    note(session, 7)
                    raise Undone
            async with transaction(sessions, read_only=True) as session:
                rows = await session.scalars(select(Event.data).order_by(Event.id))
                return [data["n"] for data in rows]
        finally:
            await engine.dispose()

    assert run_async(run) == [1, 3, 5, 6]
