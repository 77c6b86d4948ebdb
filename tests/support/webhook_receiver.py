"""A real HTTP receiver for webhooks, in a thread: it records every request (headers and raw
body) and answers what the test scripts, so delivery is tested over real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.processes import wait_until


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lowercased
    body: bytes
    status: int  # what the receiver answered
    path: str = ""  # the request's path and query

    @property
    def event(self) -> str:
        return self.headers["x-buildkite-event"]

    @property
    def request_id(self) -> str:
        return self.headers["x-buildkite-request"]

    def json(self) -> Any:
        return json.loads(self.body)


#: (index of the request, 0-based; its headers and body) -> the status to answer.
Responder = Callable[[int, dict[str, str], bytes], int]


class Receiver:
    def __init__(self, respond: Responder | None = None) -> None:
        self.requests: list[Received] = []
        self._respond = respond or (lambda _index, _headers, _body: 200)
        self._lock = threading.Lock()
        self._count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    index = receiver._count
                    receiver._count += 1
                status = receiver._respond(index, headers, body)
                with receiver._lock:
                    receiver.requests.append(Received(headers, body, status, self.path))
                answer = json.dumps({"received": index}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def accepted(self) -> list[Received]:
        """The requests answered with a 2xx, in the order they arrived."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for_accepted(
        self, count: int, *, timeout: float = 60, what: str = "webhooks"
    ) -> list[Received]:
        return wait_until(
            lambda: found if len(found := self.accepted()) >= count else None,
            timeout=timeout,
            what=f"{count} {what}",
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver(respond: Responder | None = None) -> Iterator[Receiver]:
    running = Receiver(respond)
    try:
        yield running
    finally:
        running.close()
