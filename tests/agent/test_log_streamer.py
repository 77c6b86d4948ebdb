"""Log chunking: numbering, offsets, concurrency and failure counting."""

from __future__ import annotations

import asyncio
import gzip

from kiteline.agent.api import ApiError, LogChunk
from kiteline.agent.log_streamer import MAX_UPLOADS_IN_FLIGHT, LogStreamer


async def test_no_more_than_three_uploads_are_in_flight() -> None:
    in_flight = 0
    most_in_flight = 0
    received: list[LogChunk] = []

    async def upload(chunk: LogChunk) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.01)
        received.append(chunk)
        in_flight -= 1

    streamer = LogStreamer(upload, max_chunk_size=10, interval=60)
    streamer.start()
    streamer.write(b"x" * 95)
    assert await streamer.close() == 0

    assert most_in_flight == MAX_UPLOADS_IN_FLIGHT
    chunks = sorted(received, key=lambda chunk: chunk.sequence)
    assert [(chunk.sequence, chunk.offset, chunk.size) for chunk in chunks] == [
        (number + 1, number * 10, 10 if number < 9 else 5) for number in range(10)
    ]
    assert b"".join(gzip.decompress(chunk.gzipped) for chunk in chunks) == b"x" * 95


async def test_output_is_flushed_every_interval_without_waiting_for_close() -> None:
    received: list[LogChunk] = []
    uploaded = asyncio.Event()

    async def upload(chunk: LogChunk) -> None:
        received.append(chunk)
        uploaded.set()

    streamer = LogStreamer(upload, max_chunk_size=1024, interval=0.05)
    streamer.start()
    streamer.write(b"early output\n")
    await asyncio.wait_for(uploaded.wait(), 10)
    await streamer.close()

    assert gzip.decompress(received[0].gzipped) == b"early output\n"


async def test_undeliverable_chunks_are_counted() -> None:
    async def upload(chunk: LogChunk) -> None:
        if chunk.sequence == 2:
            raise ApiError("HTTP 400", status=400, retryable=False)

    streamer = LogStreamer(upload, max_chunk_size=4, interval=60)
    streamer.write(b"aaaabbbbcccc")

    assert await streamer.close() == 1


async def test_once_the_server_closes_the_log_no_further_chunk_is_sent() -> None:
    attempted: list[int] = []

    async def upload(chunk: LogChunk) -> None:
        attempted.append(chunk.sequence)
        raise ApiError(
            "POST jobs/x/chunks: HTTP 400: Job can't have chunks: its state is finished",
            status=400,
            retryable=False,
            reason="Job can't have chunks: its state is finished",
        )

    streamer = LogStreamer(upload, max_chunk_size=4, interval=60)
    streamer.write(b"aaaa")
    await asyncio.sleep(0)  # the first upload is refused before more output comes
    await asyncio.sleep(0)
    streamer.write(b"bbbbcccc")

    assert await streamer.close() == 3  # every chunk is counted as not delivered...
    assert attempted == [1]  # ...but only the first was sent
