"""Job logs: chunks stored as agents send them (gzip, out of order) and read back in place; once
the job has finished, one object in the blob store (`logs.compaction`) or, deleted, nothing."""

from __future__ import annotations

import gzip
import uuid
import zlib
from bisect import bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import BadRequest
from kiteline.server.logs.models import JobLog, LogChunk


def decode_chunk(body: bytes, content_encoding: str | None) -> bytes:
    """Gunzip a chunk body (the agent always gzips; accept plain bodies from other clients)."""
    if (content_encoding or "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as error:
            raise BadRequest(f"Log chunk is not valid gzip: {error}") from error
    return body


async def append_chunk(
    session: AsyncSession, *, job_id: uuid.UUID, sequence: int, offset: int, data: bytes
) -> bool:
    """Store a chunk once per (job, sequence); a retried upload of the same chunk is a no-op."""
    if sequence < 0 or offset < 0:
        raise BadRequest("sequence and offset must be non-negative integers")
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stored = await session.execute(
        insert(LogChunk)
        .values(job_id=job_id, sequence=sequence, offset=offset, size=len(data), data=data)
        .on_conflict_do_nothing(index_elements=["job_id", "sequence"])
    )
    return bool(stored.rowcount)  # type: ignore[attr-defined]


class LogChangedWhileSending(Exception):
    """A chunk or the log's object went away (the log was deleted) while it was being sent."""


async def sizes(session: AsyncSession, job_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many bytes of each job's log have arrived (jobs without any are left out)."""
    if not job_ids:
        return {}
    rows = await session.execute(
        select(LogChunk.job_id, func.max(LogChunk.offset + LogChunk.size))
        .where(LogChunk.job_id.in_(list(job_ids)))
        .group_by(LogChunk.job_id)
    )
    found = {job_id: int(end or 0) for job_id, end in rows}
    compacted = await session.execute(
        select(JobLog.job_id, JobLog.size).where(
            JobLog.job_id.in_(list(job_ids)), JobLog.state == "compacted"
        )
    )
    found.update({job_id: int(size) for job_id, size in compacted})
    return found


@dataclass(frozen=True)
class Piece:
    """`length` bytes of one stored chunk, from `skip` into it, shown at `start` in the log."""

    start: int
    chunk_id: uuid.UUID
    skip: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class LogLayout:
    """Where each stored chunk's bytes show in the log, worked out from chunk sizes alone.

    The pieces are in log order and cover `0..size` without gaps or overlaps."""

    pieces: list[Piece]
    size: int
    #: The log was deleted (`DELETE …/log` or retention): it reads as empty.
    deleted: bool = field(default=False, kw_only=True)
    #: Whose log: a reader that finds its chunks compacted away mid-send reads on from the
    #: object (see `logs.compaction.log_bytes`).
    job_id: uuid.UUID | None = field(default=None, kw_only=True)

    def within(self, start: int, stop: int) -> list[Piece]:
        """The pieces, cut to the log bytes `start..stop`."""
        first = max(bisect_right(self.pieces, start, key=lambda piece: piece.start) - 1, 0)
        cut: list[Piece] = []
        for piece in self.pieces[first:]:
            if piece.start >= stop:
                break
            lo, hi = max(piece.start, start), min(piece.end, stop)
            if lo < hi:
                cut.append(Piece(lo, piece.chunk_id, piece.skip + lo - piece.start, hi - lo))
        return cut


@dataclass(frozen=True)
class CompactedLog:
    """A finished job's log as one object in the blob store: `size` bytes of log cut into
    `block_size` blocks, block i compressed to `blocks[i]` bytes (see `logs.compaction`)."""

    key: str
    size: int
    block_size: int
    blocks: tuple[int, ...]
    deleted: bool = field(default=False, kw_only=True)


async def open_log(
    session: AsyncSession, job_id: uuid.UUID, *, complete: bool
) -> LogLayout | CompactedLog:
    """Where the job's log is: its chunks laid out, its compacted object, or deleted (an
    empty layout that says so)."""
    row = await session.get(JobLog, job_id)
    if row is None:
        return await layout(session, job_id, complete=complete)
    if row.state == "deleted" or row.key is None:
        return LogLayout([], 0, deleted=True)
    return CompactedLog(row.key, row.size, row.block_size, _unpack(row.blocks))


def _unpack(packed: bytes) -> tuple[int, ...]:
    count = len(packed) // 4
    return tuple(int.from_bytes(packed[i * 4 : i * 4 + 4], "big") for i in range(count))


async def chunk_ids(session: AsyncSession, job_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await session.scalars(select(LogChunk.id).where(LogChunk.job_id == job_id)))


async def layout(session: AsyncSession, job_id: uuid.UUID, *, complete: bool) -> LogLayout:
    """The log, each chunk placed at its offset, without reading any chunk's data.

    While a job runs (`complete=False`) only the unbroken start is served: a chunk that arrived
    ahead of an earlier one waits for the gap to fill, so that a reader following the log by
    byte offset never sees text that later moves. Once the job has finished nothing more will
    come, and chunks past a gap that was never filled are appended in order. A chunk that
    overlaps text already placed overwrites it."""
    rows = await session.execute(
        select(LogChunk.id, LogChunk.offset, LogChunk.size)
        .where(LogChunk.job_id == job_id)
        .order_by(LogChunk.offset, LogChunk.sequence)
    )
    return replace(place(rows, complete=complete), job_id=job_id)


def place(chunks: Iterable[tuple[uuid.UUID, int, int]], *, complete: bool) -> LogLayout:
    """Lay out chunks given as (id, offset, size) in (offset, sequence) order; see `layout`."""
    pieces: list[Piece] = []
    end = 0
    for chunk_id, offset, length in chunks:
        if offset > end and not complete:
            break
        at = min(offset, end)
        if length == 0:
            continue
        placed = Piece(at, chunk_id, 0, length)
        if at == end:
            pieces.append(placed)
        else:
            _overwrite(pieces, placed)
        end = max(end, placed.end)
    return LogLayout(pieces, end)


def _overwrite(pieces: list[Piece], new: Piece) -> None:
    """Put `new` over the pieces it overlaps, keeping their parts outside it."""
    first = bisect_right(pieces, new.start, key=lambda piece: piece.start) - 1
    last = first
    while last < len(pieces) and pieces[last].start < new.end:
        last += 1
    overlapped = pieces[first:last]
    kept = [
        Piece(old.start, old.chunk_id, old.skip, new.start - old.start)
        for old in overlapped
        if old.start < new.start
    ]
    kept.append(new)
    kept.extend(
        Piece(new.end, old.chunk_id, old.skip + new.end - old.start, old.end - new.end)
        for old in overlapped
        if old.end > new.end
    )
    pieces[first:last] = kept


async def chunk_data(
    session: AsyncSession, chunk_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, bytes]:
    """The stored bytes of these chunks (a chunk deleted since its layout was read is missing)."""
    rows = await session.execute(
        select(LogChunk.id, LogChunk.data).where(LogChunk.id.in_(chunk_ids))
    )
    return {chunk_id: data for chunk_id, data in rows}


async def delete_log(session: AsyncSession, job_id: uuid.UUID, now: datetime) -> str | None:
    """Delete the job's log (chunks and record of its object), remembering that it was
    deleted; the object's key, for the caller to delete from the blob store once this
    transaction has committed (a crash before leaves an object nothing refers to)."""
    await session.execute(delete(LogChunk).where(LogChunk.job_id == job_id))
    key = await session.scalar(select(JobLog.key).where(JobLog.job_id == job_id).with_for_update())
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    deleted = {"state": "deleted", "key": None, "size": 0, "block_size": 0, "blocks": b""}
    await session.execute(
        insert(JobLog)
        .values(job_id=job_id, deleted_at=now, **deleted)
        .on_conflict_do_update(index_elements=["job_id"], set_={**deleted, "deleted_at": now})
    )
    return key
