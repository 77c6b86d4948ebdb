"""A job's log over HTTP as text, HTML or JSON: streamed from its chunks or from its compacted
object in the blob store (the same bytes either way), with byte ranges.

The caller authorizes the request and finds where the log is first (`logs.open_log`), so that
every refusal is an ordinary error response; the chunks' data is then read batch by batch while
the response is sent, each batch in its own short read-only transaction, or the object block by
block, and never held whole in memory."""

from __future__ import annotations

import codecs
import html
import json
import re
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kiteline.server.logs.compaction import log_bytes
from kiteline.server.logs.service import CompactedLog, LogLayout

StoredLog = LogLayout | CompactedLog

# Decoding and escaping make a few copies of what they are given: give them little at a time.
TEXT_SLICE = 256 * 1024

ANSI_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b_[^\x07]*\x07")
# The start of an escape that the next chunk might finish: a proper prefix of ANSI_ESCAPES
# running to the end of the bytes read so far.
UNFINISHED_ESCAPE = re.compile(rb"\x1b(?:\[[0-9;?]*|_[^\x07]*)?\Z")
SINGLE_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)


def text_response(request: Request, layout: StoredLog) -> Response:
    """The log as plain text; a single `Range: bytes=...` gets 206 with just those bytes."""
    headers = {"Accept-Ranges": "bytes"}
    wanted = requested_range(request, layout.size)
    if wanted is UNSATISFIABLE:
        return JSONResponse(
            {"message": f"Range not satisfiable: the log has {layout.size} bytes"},
            status_code=416,
            headers={**headers, "Content-Range": f"bytes */{layout.size}"},
        )
    status = 200
    start, stop = 0, layout.size
    if isinstance(wanted, tuple):
        status = 206
        start, stop = wanted
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{layout.size}"
    headers["Content-Length"] = str(stop - start)
    return StreamingResponse(
        _log_bytes(request, layout, start, stop),
        status_code=status,
        headers=headers,
        media_type="text/plain; charset=utf-8",
    )


def html_response(request: Request, layout: StoredLog) -> Response:
    """The log without its ANSI escapes, HTML-escaped in a terminal `<pre>`."""
    return StreamingResponse(
        _html_body(_in_slices(_log_bytes(request, layout, 0, layout.size))),
        media_type="text/html; charset=utf-8",
    )


def json_response(request: Request, layout: StoredLog, *, url: str) -> Response:
    """`{"url", "content", "size", "header_times"}`, byte for byte as a JSONResponse of it."""
    return StreamingResponse(
        _json_body(
            _in_slices(_log_bytes(request, layout, 0, layout.size)), url=url, size=layout.size
        ),
        media_type="application/json",
    )


class _Unsatisfiable:
    pass


UNSATISFIABLE = _Unsatisfiable()


def requested_range(request: Request, size: int) -> tuple[int, int] | _Unsatisfiable | None:
    """The one byte range asked for, as (start, stop); None to send the whole log.

    RFC 9110 lets a server ignore Range, which is done for several ranges, a header that does
    not parse, and a conditional If-Range (the log has no validator it could match)."""
    header = request.headers.get("range")
    if header is None or "if-range" in request.headers:
        return None
    match = SINGLE_BYTE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(size - suffix, 0), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return start, (min(int(last) + 1, size) if last else size)


def _log_bytes(request: Request, stored: StoredLog, start: int, stop: int) -> AsyncIterator[bytes]:
    return log_bytes(request.app.state.sessions, request.app.state.blobs, stored, start, stop)


async def _in_slices(log: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for data in log:
        for at in range(0, len(data), TEXT_SLICE):
            yield data[at : at + TEXT_SLICE]


async def _html_body(log: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield b'<pre class="term-container">'
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    unfinished = b""
    async for data in log:
        buffer = unfinished + data if unfinished else data
        cut = UNFINISHED_ESCAPE.search(buffer)
        end = cut.start() if cut else len(buffer)
        unfinished = buffer[end:]
        text = decoder.decode(ANSI_ESCAPES.sub(b"", buffer[:end]))
        if text:
            yield html.escape(text).encode()
    text = decoder.decode(ANSI_ESCAPES.sub(b"", unfinished), final=True)
    yield (html.escape(text) + "</pre>").encode()


async def _json_body(log: AsyncIterator[bytes], *, url: str, size: int) -> AsyncIterator[bytes]:
    # As JSONResponse renders: compact separators, non-ASCII characters as they are.
    yield f'{{"url":{json.dumps(url, ensure_ascii=False)},"content":"'.encode()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    async for data in log:
        escaped = _json_string_content(decoder.decode(data))
        if escaped:
            yield escaped
    tail = f'","size":{size},"header_times":[]}}'.encode()
    yield _json_string_content(decoder.decode(b"", final=True)) + tail


def _json_string_content(text: str) -> bytes:
    """`text` escaped as the inside of a JSON string (escaping is per character, so pieces of a
    text escaped apart join into the text escaped whole)."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode()
