"""The HTTP protocol the server runs with: each response written in one piece, and nothing an
HTTP client relies on lost on the way (keep-alive, HEAD, streamed bodies, `100 Continue`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from kiteline.server.kit.serving import _HeldHeaders
from tests.support.live_server import LiveServer


class RecordingTransport(asyncio.Transport):
    """An asyncio transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"extra:{name}"


def test_headers_and_body_go_out_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        transport = RecordingTransport()
        held = _HeldHeaders(transport)
        held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        held.write(b"{}")
        await asyncio.sleep(0)
        return transport.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_headers_alone_go_out_when_the_loop_comes_round() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        transport = RecordingTransport()
        held = _HeldHeaders(transport)
        held.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        before = list(transport.writes)
        await asyncio.sleep(0)
        held.write(b"5\r\nhello\r\n")
        return before, transport.writes

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"5\r\nhello\r\n"]


def test_closing_sends_what_is_held_first_and_the_rest_passes_through() -> None:
    async def scenario() -> RecordingTransport:
        transport = RecordingTransport()
        held = _HeldHeaders(transport)
        held.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        held.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
        assert held.get_extra_info("peername") == "extra:peername"
        return transport

    transport = asyncio.run(scenario())
    assert transport.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]
    assert transport.closed


def _exchange(server: LiveServer, raw: bytes, *, expect_closes: bool = False) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        sock.settimeout(1.0 if not expect_closes else 10)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
        return received


def test_keep_alive_pipelined_requests_are_answered_in_order(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    answer = _exchange(
        server,
        b"GET /v2/meta HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /v2/no-such-thing HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /v2/meta HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        expect_closes=True,
    )
    first, rest = answer.split(b'{"webhook_ips":[]}', 1)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 18\r\n" in first
    missing, last = rest.split(b"HTTP/1.1 200 OK\r\n")
    assert missing.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert missing.endswith(b'{"message":"Not Found"}')
    assert b"connection: close\r\n" in last
    assert last.endswith(b'\r\n\r\n{"webhook_ips":[]}')


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v3/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Token not-a-token\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        final = sock.recv(65536)
    assert final.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert final.endswith(b'{"message":"Invalid agent registration token"}')
