"""A ping reads the runnable jobs in the dispatch queue's order straight from `ix_jobs_dispatch`
(decision 0046): the database sorts nothing. Sorted, a build of 20,000 runnable jobs made every
idle agent's ping sort all of them, on SQLite on the event loop's thread (tens of milliseconds
a ping). Asserted on the query plans of both databases."""

from __future__ import annotations

import uuid

from alembic import command
from sqlalchemy import text

from kiteline.server.jobs.claims import _QUEUE
from kiteline.server.kit.db import create_engine
from kiteline.server.kit.migrate import alembic_config
from tests.support.run_async import run_async


def _plan(database_url: str) -> list[str]:
    command.upgrade(alembic_config(database_url), "head")

    async def explain() -> list[str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                query = _QUEUE.compile(dialect=engine.dialect)
                given = query.construct_params(
                    {"organization_id": uuid.uuid4(), "skip": 0, "take": 10}
                )
                processors = query._bind_processors
                values = tuple(
                    processors[name](given[name]) if name in processors else given[name]
                    for name in query.positiontup or ()
                )
                if engine.dialect.name == "sqlite":
                    found = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}", values)
                    return [row[-1] for row in found]
                # An empty table is read whole otherwise: ask for the plan an index allows.
                await connection.execute(text("SET enable_seqscan = off"))
                found = await connection.exec_driver_sql(f"EXPLAIN {query}", values)
                return [row[0] for row in found]
        finally:
            await engine.dispose()

    return run_async(explain)


def test_the_dispatch_queue_is_read_in_its_order_from_the_index(database_url: str) -> None:
    plan = _plan(database_url)
    if database_url.startswith("sqlite"):
        assert plan == [
            "SEARCH jobs USING INDEX ix_jobs_dispatch (organization_id=? AND state=?)"
        ], plan
    else:
        assert any("Index Scan using ix_jobs_dispatch on jobs" in line for line in plan), plan
        assert not any("Sort" in line for line in plan), plan
