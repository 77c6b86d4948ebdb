"""A large build's read is done off the event loop's thread (decision 0048): its job rows are
fetched (on SQLite, whose statements otherwise run on the loop's thread) and rendered in a
thread, its answer filled and joined there, and the bytes are those the loop's own slices make.
Which thread ran what is seen from inside: SQLite's trace callback runs in the thread that runs
the statement, and a thread with no running event loop is not the loop's."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from kiteline.server.builds import listing, rendering, shapes
from kiteline.server.builds.models import Build
from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.kit.urls import Urls
from tests.support.live_server import LiveServer
from tests.support.run_async import run_async

#: Over `rendering.THREADED_JOB_ROWS` (and its answer over `THREADED_HOLES` holes).
JOBS = 2100


def _on_loop_thread() -> bool:
    return asyncio._get_running_loop() is not None


async def _read(
    database_url: str, threads: list[tuple[str, bool]]
) -> tuple[list[bytes], list[bytes]]:
    """Build 1 rendered as a read renders it, whole and as its parts; in `threads`, for each
    job rendered and each SQLite statement run, whether it ran on the loop's thread."""
    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine), read_only=True) as session:
            if engine.dialect.name == "sqlite":
                connection = await session.connection()
                sync = connection.sync_connection
                driver: Any = sync.connection.dbapi_connection  # type: ignore[union-attr]
                raw: sqlite3.Connection = driver._connection._conn
                raw.set_trace_callback(lambda sql: threads.append((sql, _on_loop_thread())))
            build = await session.scalar(select(Build).where(Build.number == 1))
            assert build is not None
            page = await rendering.render(
                session,
                Urls("http://kiteline.test"),
                await listing.listed_by_id(session, [uuid.UUID(str(build.id))]),
                org_slugs={build.organization_id: "acme"},
                shape=rendering.Shape(include_job_state_counts=True),
                cache=None,
            )
            (parts,) = await page.each_parts()
            return await page.each(), parts
    finally:
        await engine.dispose()


def test_a_large_builds_rows_are_fetched_and_rendered_off_the_loop_thread(
    server: LiveServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = server.identity("acme")
    steps = "steps:\n" + "".join(f"  - label: s{n}\n    command: echo {n}\n" for n in range(JOBS))
    with server.client(identity.api_token) as client:
        client.timeout = 600
        made = client.post(
            "/v2/organizations/acme/pipelines", json={"name": "big", "configuration": steps}
        )
        assert made.status_code == 201, made.text
        created = client.post(
            "/v2/organizations/acme/pipelines/big/builds",
            json={"commit": "HEAD", "branch": "main"},
        )
        assert created.status_code == 201, created.text

    job_body = shapes.job_body
    threads: list[tuple[str, bool]] = []

    def noted_job_body(*args: Any, **kwargs: Any) -> Any:
        threads.append(("job_body", _on_loop_thread()))
        return job_body(*args, **kwargs)

    monkeypatch.setattr(shapes, "job_body", noted_job_body)
    (threaded,), parts = run_async(lambda: _read(database_url, threads))

    rendered = [on_loop for name, on_loop in threads if name == "job_body"]
    assert rendered == [False] * JOBS
    # Filled and joined in a thread, into pieces of about STREAMED_BYTES: a few, not the
    # 10,000 or more its holes and the bytes between them make.
    assert 1 < len(parts) <= len(threaded) // rendering.STREAMED_BYTES + 1
    assert all(len(part) >= rendering.STREAMED_BYTES for part in parts[:-1])
    if database_url.startswith("sqlite"):
        # The job rows' statement, run and fetched in a thread.
        job_rows = [on_loop for sql, on_loop in threads if "ORDER BY jobs.position" in sql]
        assert job_rows == [False]

    # The same read made by the loop's slices (as a build of fewer jobs is) is byte for byte
    # the same.
    monkeypatch.setattr(rendering, "THREADED_JOB_ROWS", JOBS + 1)
    monkeypatch.setattr(rendering, "THREADED_HOLES", 10**9)
    threads.clear()
    (sliced,), _ = run_async(lambda: _read(database_url, threads))
    assert [on_loop for name, on_loop in threads if name == "job_body"] == [True] * JOBS
    assert sliced == threaded
    assert len(threaded) > rendering.STREAMED_BYTES
