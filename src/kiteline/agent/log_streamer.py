"""The job log upload: buffers output and sends it as gzip chunks, up to three in flight."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Awaitable, Callable

from kiteline.agent.api import ApiError, LogChunk

log = logging.getLogger("kiteline.agent")

MAX_UPLOADS_IN_FLIGHT = 3
DEFAULT_CHUNK_SIZE = 100 * 1024  # used when the server sends no chunks_max_size_bytes

UploadChunk = Callable[[LogChunk], Awaitable[None]]

#: How Buildkite (and Kiteline) refuse a chunk for a job that is no longer running.
LOG_CLOSED_REASON = "Job can't have chunks"


def log_closed(error: ApiError) -> bool:
    """Whether the server refused a chunk because the job's log is closed."""
    return error.status == 400 and error.reason.startswith(LOG_CLOSED_REASON)


class LogStreamer:
    """Collects output via `write`; cuts a chunk every `interval` seconds or at `max_chunk_size`.

    Chunks are numbered from 1 with their byte offset in the whole log, so the server can place
    them even when concurrent uploads arrive out of order. `close` flushes what is left, waits
    for every upload and returns how many chunks could not be delivered.
    """

    def __init__(self, upload: UploadChunk, *, max_chunk_size: int, interval: float) -> None:
        self._upload = upload
        self._max_chunk_size = max_chunk_size if max_chunk_size > 0 else DEFAULT_CHUNK_SIZE
        self._interval = interval if interval > 0 else 1.0
        self._buffer = bytearray()
        self._sequence = 0
        self._offset = 0
        self._slots = asyncio.Semaphore(MAX_UPLOADS_IN_FLIGHT)
        self._uploads: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.failed_count = 0
        self._log_closed = False

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._flush_periodically())

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._max_chunk_size:
            self._cut(whole_chunks_only=True)

    async def close(self) -> int:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._cut(whole_chunks_only=False)
        while self._uploads:
            await asyncio.gather(*self._uploads)
        return self.failed_count

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._cut(whole_chunks_only=False)

    def _cut(self, *, whole_chunks_only: bool) -> None:
        while self._buffer and (not whole_chunks_only or len(self._buffer) >= self._max_chunk_size):
            data = bytes(self._buffer[: self._max_chunk_size])
            del self._buffer[: len(data)]
            self._sequence += 1
            chunk = LogChunk(
                sequence=self._sequence,
                offset=self._offset,
                size=len(data),
                # Level 1: several times faster than the default 9 and still a few times
                # smaller than the text; at 9 a chatty job was limited by its agent's gzip.
                gzipped=gzip.compress(data, compresslevel=1),
            )
            self._offset += len(data)
            task = asyncio.create_task(self._send(chunk))
            self._uploads.add(task)
            task.add_done_callback(self._uploads.discard)

    async def _send(self, chunk: LogChunk) -> None:
        async with self._slots:
            if self._log_closed:
                self.failed_count += 1
                return
            try:
                await self._upload(chunk)
            except ApiError as exc:
                self.failed_count += 1
                if not log_closed(exc):
                    log.warning("log chunk %d dropped: %s", chunk.sequence, exc)
                elif not self._log_closed:
                    # The job is over on the server (lost, canceled): every later chunk would
                    # be refused the same way, so none is sent, and this is said once.
                    self._log_closed = True
                    log.warning(
                        "log chunk %d refused, the rest of the log is not sent: %s",
                        chunk.sequence,
                        exc,
                    )
