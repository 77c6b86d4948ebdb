"""Log compaction and retention: the sweeps that move finished jobs' logs into the blob store
and delete what is older than the retention settings. Their own loop beside the other sweeps
(a 50 MB log takes a second or two to compact: the timeouts and lost agents do not wait on it),
led by one process at a time as they are (see `leader`), under a lock of their own."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.artifacts import service as artifacts
from kiteline.server.blobs import BlobStore
from kiteline.server.kit.db import transaction, utcnow
from kiteline.server.logs import compaction, retention
from kiteline.server.logs import service as logs
from kiteline.server.webhooks import queue as deliveries
from kiteline.server.workers.leader import HOUSEKEEPING_LOCK_KEY, Sweep, sweep_while_leading
from kiteline.settings import Settings

log = logging.getLogger("kiteline.workers")

#: Rows one retention sweep handles per round (the next round takes the rest).
RETENTION_BATCH = 200


async def run_housekeeping(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    await sweep_while_leading(
        sessions.kw["bind"],
        settings,
        stop,
        lambda: housekeeping_sweeps(sessions, store, settings),
        key=HOUSEKEEPING_LOCK_KEY,
    )


def housekeeping_sweeps(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, settings: Settings
) -> list[Sweep]:
    """The sweeps the settings turn on: compaction, and each retention with a period."""
    sweeps: list[Sweep] = []
    if settings.log_compaction:
        sweeps.append(
            (
                "log compaction",
                lambda: compaction.compact_logs(
                    sessions, store, delay_seconds=settings.log_compaction_delay_seconds
                ),
            )
        )
    if settings.log_retention_seconds:
        sweeps.append(("log retention", lambda: expire_logs(sessions, store, settings)))
    if settings.artifact_retention_seconds:
        sweeps.append(("artifact retention", lambda: expire_artifacts(sessions, store, settings)))
    if settings.webhook_delivery_retention_seconds:
        sweeps.append(("webhook delivery retention", lambda: forget_deliveries(sessions, settings)))
    return sweeps


async def expire_logs(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, settings: Settings
) -> int:
    """Delete the logs of builds finished more than `log_retention_seconds` ago: each one's
    object first, then its chunks and record (a crash between leaves the record, and the next
    round deletes the missing object again, which is no error)."""
    cutoff = utcnow() - timedelta(seconds=settings.log_retention_seconds)
    async with transaction(sessions, read_only=True) as session:
        due = await retention.logs_of_builds_finished_before(session, cutoff, RETENTION_BATCH)
    for job_id, key in due:
        if key is not None:
            await store.delete(key)
        async with transaction(sessions) as session:
            key = await logs.delete_log(session, job_id, utcnow())
        if key is not None:  # compacted after it was looked at
            await store.delete(key)
    return len(due)


async def expire_artifacts(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, settings: Settings
) -> int:
    """Artifacts of builds finished more than `artifact_retention_seconds` ago: their files
    deleted, then their state `expired` (as Buildkite's expired artifacts)."""
    cutoff = utcnow() - timedelta(seconds=settings.artifact_retention_seconds)
    async with transaction(sessions, read_only=True) as session:
        due = await artifacts.of_builds_finished_before(session, cutoff, RETENTION_BATCH)
        keys = [(artifact.id, artifacts.blob_key(artifact)) for artifact in due]
    for _, key in keys:
        await store.delete(key)
    if keys:
        async with transaction(sessions) as session:
            await artifacts.expire(session, [artifact_id for artifact_id, _ in keys])
    return len(keys)


async def forget_deliveries(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    cutoff = utcnow() - timedelta(seconds=settings.webhook_delivery_retention_seconds)
    async with transaction(sessions) as session:
        return await deliveries.forget_finished_before(session, cutoff, RETENTION_BATCH)
