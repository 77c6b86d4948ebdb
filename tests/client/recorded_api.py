"""A stand-in for api.buildkite.com in a thread: real HTTP on a real port, answering recorded
responses by method and exact request target, and keeping every request it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = json.loads((Path(__file__).parent / "buildkite_responses.json").read_text())


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # JSON, or raw bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # path and query, exactly as sent
    headers: dict[str, str]  # names lowercased
    body: bytes


class RecordedApi:
    """`answer(method, target, *answers)`: the answers go out in turn, the last one repeats.
    Anything not recorded is Buildkite's 404."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[tuple[str, str], list[Answer]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, method: str, target: str, *answers: Answer) -> None:
        self._routes[(method, target)] = list(answers)

    def _next(self, method: str, target: str) -> Answer:
        with self._lock:
            queue = self._routes.get((method, target))
            if not queue:
                return Answer(404, {"message": "Not Found"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with api._lock:
                    api.requests.append(Seen(self.command, self.path, headers, body))
                answer = api._next(self.command, self.path)
                raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body)
                payload = raw.encode() if isinstance(raw, str) else raw
                self.send_response(answer.status)
                if not isinstance(answer.body, bytes):
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recorded_api() -> Iterator[RecordedApi]:
    api = RecordedApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()
