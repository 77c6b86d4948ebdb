"""Job logs: chunks stored as agents send them (gzip, out of order) and read back in place."""

from __future__ import annotations

import gzip
import uuid
import zlib

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import BadRequest
from kiteline.server.logs.models import LogChunk


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
    exists = await session.scalar(
        select(LogChunk.id).where(LogChunk.job_id == job_id, LogChunk.sequence == sequence)
    )
    if exists is not None:
        return False
    session.add(
        LogChunk(job_id=job_id, sequence=sequence, offset=offset, size=len(data), data=data)
    )
    return True


async def size(session: AsyncSession, job_id: uuid.UUID) -> int:
    end = await session.scalar(
        select(func.max(LogChunk.offset + LogChunk.size)).where(LogChunk.job_id == job_id)
    )
    return int(end or 0)


async def read(session: AsyncSession, job_id: uuid.UUID, *, complete: bool = True) -> bytes:
    """The log, each chunk placed at its offset.

    While a job runs (`complete=False`) only the unbroken start is served: a chunk that arrived
    ahead of an earlier one waits for the gap to fill, so that a reader following the log by
    byte offset never sees text that later moves. Once the job has finished nothing more will
    come, and chunks past a gap that was never filled are appended in order."""
    rows = await session.execute(
        select(LogChunk.offset, LogChunk.data)
        .where(LogChunk.job_id == job_id)
        .order_by(LogChunk.offset, LogChunk.sequence)
    )
    log = bytearray()
    for offset, data in rows:
        if offset > len(log) and not complete:
            break
        if offset >= len(log):
            log.extend(data)
        else:
            log[offset : offset + len(data)] = data
    return bytes(log)


async def delete_log(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(delete(LogChunk).where(LogChunk.job_id == job_id))
