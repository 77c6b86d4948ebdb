"""A finished job's log as one object in the blob store: compacted from its chunks off the
request path, and read back a window at a time (see docs/decisions/0028).

The object is the log cut into fixed-size blocks (`BLOCK_SIZE` bytes of log each, the last
shorter), each compressed as its own gzip member, back to back: the whole object is a valid
.gz file of the log (`zcat` reads it), and the compressed size of each block, kept in the
`job_logs` row, tells where any byte of the log starts in it. A read of bytes `start..stop`
decompresses only the blocks they touch, and stops reading the object after the last one.

Compaction writes the object first (under a key that depends on the job alone, so that a
half-written object from an attempt that died is overwritten by the next), then in ONE
transaction records the `job_logs` row and deletes the chunks, after checking that they are
still the ones it compacted. A process killed at any point leaves either the chunks (and maybe
an object that nothing refers to yet, which the next attempt overwrites) or the row and the
object: never neither."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.blobs import BlobStore
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.db import transaction, utcnow
from kiteline.server.logs import service
from kiteline.server.logs.models import JobLog, LogChunk
from kiteline.server.logs.service import CompactedLog, LogLayout, Piece

log = logging.getLogger("kiteline.workers")

#: Bytes of log per compressed block: a window of the web viewer or a small Range touches one
#: or two, so a read decompresses at most a few MiB whatever the log's size.
BLOCK_SIZE = 1024 * 1024
#: zlib's level: 1 compresses a log 5-10x at several times level 6's speed (bench/logs.py).
LEVEL = 1
#: Chunks read from the database at once while compacting (as `logs.http` streams them).
BATCH_BYTES = 2 * 1024 * 1024
BATCH_CHUNKS = 256
#: Logs compacted per sweep round, so that one round stays short.
JOBS_PER_ROUND = 20
#: Test-only: seconds to wait after the object is written and before the chunks go, so that a
#: test can kill the process right there. Never set it in production.
PAUSE_ENV = "KITELINE_TEST_COMPACTION_PAUSE_SECONDS"


class LogObjectChanged(Exception):
    """The object ended before the blocks its row describes (deleted or damaged)."""


def object_key(job_id: uuid.UUID) -> str:
    return f"logs/{job_id}.log.gz"


def pack_blocks(sizes: list[int]) -> bytes:
    return struct.pack(f">{len(sizes)}I", *sizes)


def compress_block(data: bytes) -> bytes:
    """One gzip member (mtime 0: the same log always compresses to the same bytes)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def decompress_block(data: bytes) -> bytes:
    return zlib.decompress(data, 31)


# Reading ----------------------------------------------------------------------------------


async def read_object(
    store: BlobStore, compacted: CompactedLog, start: int, stop: int
) -> AsyncIterator[bytes]:
    """The log's bytes `start..stop` from its object, block by block."""
    stop = min(stop, compacted.size)
    if start >= stop:
        return
    first, last = start // compacted.block_size, (stop - 1) // compacted.block_size
    blocks = compacted.blocks
    skip = sum(blocks[:first])
    at = 0  # where in the object the next bytes read start
    pending = bytearray()
    block = first
    stream = store.read(compacted.key)
    try:
        async for data in stream:
            if at + len(data) <= skip:
                at += len(data)
                continue
            pending += data[max(skip - at, 0) :]
            at += len(data)
            while block <= last and len(pending) >= blocks[block]:
                raw = bytes(pending[: blocks[block]])
                del pending[: blocks[block]]
                plain = await asyncio.to_thread(decompress_block, raw)
                offset = block * compacted.block_size
                yield plain[max(start - offset, 0) : stop - offset]
                block += 1
            if block > last:
                return
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            await closing()
    raise LogObjectChanged(f"log object {compacted.key} ended before block {block}")


async def read_chunks(
    sessions: async_sessionmaker[AsyncSession], pieces: list[Piece]
) -> AsyncIterator[bytes]:
    """The bytes of these pieces of chunks, a batch of chunks per short read transaction."""
    for batch in _batches(pieces):
        async with transaction(sessions, read_only=True) as session:
            data = await service.chunk_data(session, {piece.chunk_id for piece in batch})
        for piece in batch:
            part = data.get(piece.chunk_id, b"")[piece.skip : piece.skip + piece.length]
            if len(part) != piece.length:
                raise service.LogChangedWhileSending(
                    f"log chunk {piece.chunk_id} changed or was deleted while being sent"
                )
            yield part


def _batches(pieces: list[Piece]) -> Iterator[list[Piece]]:
    batch: list[Piece] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += piece.length
        if size >= BATCH_BYTES or len(batch) >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def log_bytes(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    stored: LogLayout | CompactedLog,
    start: int,
    stop: int,
) -> AsyncIterator[bytes]:
    """The log's bytes `start..stop`, from wherever it is kept."""
    if isinstance(stored, CompactedLog):
        return read_object(store, stored, start, stop)
    return _chunks_then_object(sessions, store, stored, start, stop)


async def _chunks_then_object(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    stored: LogLayout,
    start: int,
    stop: int,
) -> AsyncIterator[bytes]:
    """The bytes from the chunks; when compaction moves them into the object while they are
    being sent (the chunks are deleted once the object holds the same bytes), the rest from
    the object."""
    sent = start
    try:
        async for part in read_chunks(sessions, stored.within(start, stop)):
            yield part
            sent += len(part)
    except service.LogChangedWhileSending:
        if stored.job_id is None:
            raise
        async with transaction(sessions, read_only=True) as session:
            now = await service.open_log(session, stored.job_id, complete=True)
        if not isinstance(now, CompactedLog) or now.size < stop:
            raise
        async for part in read_object(store, now, sent, stop):
            yield part


async def read_range(
    session: AsyncSession,
    store: BlobStore,
    stored: LogLayout | CompactedLog,
    start: int,
    stop: int,
) -> bytes:
    """The log's bytes `start..stop` at once (a window: small), chunks read in `session`."""
    if isinstance(stored, CompactedLog):
        return b"".join([part async for part in read_object(store, stored, start, stop)])
    pieces = stored.within(start, stop)
    found = await service.chunk_data(session, {piece.chunk_id for piece in pieces})
    return b"".join(
        found.get(piece.chunk_id, b"")[piece.skip : piece.skip + piece.length] for piece in pieces
    )


# Compacting -------------------------------------------------------------------------------


async def compactable(
    sessions: async_sessionmaker[AsyncSession], finished_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Jobs finished before `finished_before` that still have chunks and no `job_logs` row."""
    async with transaction(sessions, read_only=True) as session:
        rows = await session.scalars(
            select(LogChunk.job_id)
            .outerjoin(JobLog, JobLog.job_id == LogChunk.job_id)
            .where(
                LogChunk.job_id.in_(jobs.finished_before(finished_before)),
                JobLog.job_id.is_(None),
            )
            .distinct()
            .limit(limit)
        )
        return list(rows)


async def compact_logs(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, *, delay_seconds: float
) -> int:
    """Compact the logs of jobs finished at least `delay_seconds` ago, a few per round."""
    cutoff = utcnow() - timedelta(seconds=delay_seconds)
    compacted = 0
    for job_id in await compactable(sessions, cutoff, JOBS_PER_ROUND):
        if await compact_log(sessions, store, job_id):
            compacted += 1
    return compacted


async def compact_log(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, job_id: uuid.UUID
) -> bool:
    """Move one finished job's log from its chunks into the blob store; False when another
    process did it first or the log was deleted meanwhile."""
    async with transaction(sessions, read_only=True) as session:
        # The chunks first, then whether the log is compacted or deleted: if another process
        # records it in between, this sees the row and leaves; if not, the layout was read
        # before its chunks went (they go in the same transaction as the row comes), and
        # reading their data fails before anything replaces the object.
        layout = await service.layout(session, job_id, complete=True)
        chunk_ids = set(await service.chunk_ids(session, job_id))
        done = await session.scalar(select(JobLog.state).where(JobLog.job_id == job_id))
    if done is not None or not chunk_ids:
        return False
    key = object_key(job_id)
    sizes: list[int] = []
    await store.write(key, _compressed(read_chunks(sessions, layout.pieces), sizes))
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    if pause:
        log.warning("%s: pausing %gs after writing %s", PAUSE_ENV, pause, key)
        await asyncio.sleep(pause)
    async with transaction(sessions) as session:
        state = await session.scalar(select(JobLog.state).where(JobLog.job_id == job_id))
        if state is not None:  # compacted by another process, or deleted meanwhile
            recorded = False
        elif set(await service.chunk_ids(session, job_id)) != chunk_ids:
            # A chunk came since they were read: leave them, try again next round (the
            # object is overwritten then).
            log.warning("log of job %s changed while being compacted; retried later", job_id)
            return False
        else:
            recorded = await _record(session, job_id, key, layout.size, sizes)
    if state == "deleted":  # deleted while this was written: the object must go too
        await store.delete(key)
    return recorded


async def _record(
    session: AsyncSession, job_id: uuid.UUID, key: str, size: int, sizes: list[int]
) -> bool:
    """The `job_logs` row, and the chunks deleted, in the caller's one transaction."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    recorded = await session.execute(
        insert(JobLog)
        .values(
            job_id=job_id,
            state="compacted",
            key=key,
            size=size,
            block_size=BLOCK_SIZE,
            blocks=pack_blocks(sizes),
            compacted_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["job_id"])
    )
    if not recorded.rowcount:  # type: ignore[attr-defined]
        return False  # another process recorded it since (its object is this one)
    await session.execute(delete(LogChunk).where(LogChunk.job_id == job_id))
    return True


async def _compressed(log_data: AsyncIterator[bytes], sizes: list[int]) -> AsyncIterator[bytes]:
    """The log cut into BLOCK_SIZE blocks, each compressed (in a thread); each block's
    compressed size is appended to `sizes`."""
    pending = bytearray()
    async for data in log_data:
        pending += data
        while len(pending) >= BLOCK_SIZE:
            block = bytes(pending[:BLOCK_SIZE])
            del pending[:BLOCK_SIZE]
            packed = await asyncio.to_thread(compress_block, block)
            sizes.append(len(packed))
            yield packed
    if pending:
        packed = await asyncio.to_thread(compress_block, bytes(pending))
        sizes.append(len(packed))
        yield packed
