"""How uvicorn serves the app: its httptools protocol, with each response sent in one piece.

uvicorn writes a response's status line and headers as soon as the app starts the response,
and the body as a second write. Every write to a socket is a system call, and on loopback
(agents next to their server, a proxy in front) the kernel's work for both ends of the
connection is charged to the writer: for the agent API's small answers the two writes were a
third of the server's CPU per request. Here the first write of a response is held until the
next one (the body, in the same turn of the event loop for ordinary responses) or until that
turn ends (a streamed response whose first chunk is not ready yet), and both go out together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeldHeaders:
    """A response's view of the connection: its first write waits for the second (or for the
    end of this turn of the event loop); everything else goes to the transport unchanged."""

    __slots__ = ("_held", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._held = bytes(data)
            asyncio.get_running_loop().call_soon(self.flush)
            return
        if self._held is not None:
            data = self._held + data
            self._held = None
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OnePieceHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each request's response written through `_HeldHeaders`."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.transport, _HeldHeaders):
            cycle.transport = _HeldHeaders(self.transport)  # type: ignore[assignment]
