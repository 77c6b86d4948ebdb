"""A fake Agent API (/v3) on 127.0.0.1 for the agent's tests: records requests, hands out jobs."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

REGISTRATION_TOKEN = "registration-token-123"
CANCEL_STATES = {"canceling": "canceled", "timing_out": "timed_out"}

_ROUTES = [
    ("POST", re.compile(r"register"), "register"),
    ("POST", re.compile(r"connect"), "connect"),
    ("POST", re.compile(r"disconnect"), "disconnect"),
    ("POST", re.compile(r"heartbeat"), "heartbeat"),
    ("GET", re.compile(r"ping"), "ping"),
    ("PUT", re.compile(r"jobs/(?P<job>[^/]+)/accept"), "accept"),
    ("PUT", re.compile(r"jobs/(?P<job>[^/]+)/start"), "start"),
    ("POST", re.compile(r"jobs/(?P<job>[^/]+)/chunks"), "chunks"),
    ("PUT", re.compile(r"jobs/(?P<job>[^/]+)/finish"), "finish"),
    ("GET", re.compile(r"jobs/(?P<job>[^/]+)"), "state"),
]


@dataclass(frozen=True)
class Recorded:
    route: str
    method: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    job_id: str | None
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass
class Chunk:
    sequence: int
    offset: int
    size: int
    data: bytes


@dataclass
class FakeJob:
    id: str
    env: dict[str, str]
    token: str
    chunks_max_size_bytes: int
    state: str = "scheduled"
    agent_token: str | None = None
    finish: dict[str, Any] | None = None
    chunks: list[Chunk] = field(default_factory=list)

    def log(self) -> str:
        text = bytearray()
        for chunk in sorted(self.chunks, key=lambda chunk: chunk.offset):
            text[chunk.offset : chunk.offset + chunk.size] = chunk.data
        return text.decode()


class FakeAgentApi:
    """Serves /v3 like Kiteline's server would; tests queue jobs and read what the agent sent."""

    def __init__(
        self,
        *,
        ping_interval: float = 1,
        job_status_interval: float = 0.2,
        heartbeat_interval: float = 60,
        request_headers: dict[str, str] | None = None,
    ) -> None:
        self.ping_interval = ping_interval
        self.job_status_interval = job_status_interval
        self.heartbeat_interval = heartbeat_interval
        self.request_headers = request_headers
        self.requests: list[Recorded] = []
        self.jobs: dict[str, FakeJob] = {}
        self.agents: dict[str, str] = {}  # access token -> agent name
        self.ping_actions: list[str] = []
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._counter = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v3"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- what tests set up ------------------------------------------------------------------

    def add_job(
        self,
        command: str,
        *,
        env: dict[str, str] | None = None,
        token: str | None = None,
        chunks_max_size_bytes: int = 100 * 1024,
    ) -> FakeJob:
        job_id = str(uuid.uuid4())
        job = FakeJob(
            id=job_id,
            env={
                "CI": "true",
                "BUILDKITE": "true",
                "BUILDKITE_JOB_ID": job_id,
                "BUILDKITE_BUILD_ID": str(uuid.uuid4()),
                "BUILDKITE_BUILD_NUMBER": "1",
                "BUILDKITE_REPO": "",
                "BUILDKITE_COMMIT": "HEAD",
                "BUILDKITE_BRANCH": "main",
                "BUILDKITE_ORGANIZATION_SLUG": "acme",
                "BUILDKITE_PIPELINE_SLUG": "widgets",
                "BUILDKITE_PIPELINE_PROVIDER": "local",
                "BUILDKITE_PULL_REQUEST": "false",
                "BUILDKITE_COMMAND": command,
                **(env or {}),
            },
            token=f"job-token-{job_id[:8]}" if token is None else token,
            chunks_max_size_bytes=chunks_max_size_bytes,
        )
        with self._lock:
            self.jobs[job_id] = job
            self._lock.notify_all()
        return job

    def set_state(self, job: FakeJob, state: str) -> None:
        with self._lock:
            job.state = state

    def fail_next(self, route: str, *statuses: int) -> None:
        """Answer the next calls to `route` with these HTTP statuses, one each."""
        with self._lock:
            self._failures.setdefault(route, []).extend(statuses)

    # -- what tests read --------------------------------------------------------------------

    def calls(self, route: str) -> list[Recorded]:
        with self._lock:
            return [request for request in self.requests if request.route == route]

    def sequence(self, *, ignore: tuple[str, ...] = ("state", "heartbeat")) -> list[str]:
        """Routes in arrival order, repeats collapsed, polling routes left out."""
        routes: list[str] = []
        with self._lock:
            for request in self.requests:
                if request.route not in ignore and (not routes or routes[-1] != request.route):
                    routes.append(request.route)
        return routes

    # -- the server -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._dispatch(self)

            do_POST = do_PUT = do_GET

        return Handler

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = split.path.removeprefix("/v3/")
        found = next(
            (
                (route, match)
                for method, pattern, route in _ROUTES
                if method == handler.command and (match := pattern.fullmatch(path))
            ),
            None,
        )
        if found is None:
            self._respond(handler, 404, {"message": f"no route for {handler.command} {path}"})
            return
        route, match = found
        job_id = unquote(match["job"]) if "job" in match.groupdict() else None
        request = Recorded(
            route=route,
            method=handler.command,
            raw_path=split.path,
            query=dict(parse_qsl(split.query)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            job_id=job_id,
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
            injected = self._failures.get(route)
            status = injected.pop(0) if injected else None
        if status is not None:
            self._respond(handler, status, {"message": f"injected {status}"})
            return
        answer: Callable[[Recorded], tuple[int, Any]] = getattr(self, f"_{route}")
        code, payload = answer(request)
        self._respond(handler, code, payload)

    def _respond(self, handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        # The agent drops a long-polling ping when it stops; there is no one left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(status)
            if payload is not None:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

    def _agent_token(self, request: Recorded) -> str | None:
        token = request.authorization.removeprefix("Token ")
        return token if token in self.agents else None

    def _job_for(self, request: Recorded) -> FakeJob | None:
        token = request.authorization.removeprefix("Token ")
        job = self.jobs.get(request.job_id or "")
        if job is None or token not in {job.token, job.agent_token}:
            return None
        return job

    def _register(self, request: Recorded) -> tuple[int, Any]:
        if request.authorization != f"Token {REGISTRATION_TOKEN}":
            return 401, {"message": "invalid registration token"}
        number = next(self._counter)
        name = request.json()["name"] or f"agent-{number}"
        token = f"access-token-{number}"
        with self._lock:
            self.agents[token] = name
        payload: dict[str, Any] = {
            "id": f"agent-id-{number}",
            "name": name,
            "access_token": token,
            "endpoint": "",
            "ping_interval": self.ping_interval,
            "job_status_interval": self.job_status_interval,
            "heartbeat_interval": self.heartbeat_interval,
            "meta_data": request.json()["meta_data"],
        }
        if self.request_headers is not None:
            payload["request_headers"] = self.request_headers
        return 200, payload

    def _connect(self, request: Recorded) -> tuple[int, Any]:
        if not self._agent_token(request):
            return 401, {"message": "unknown agent"}
        return 200, {"connection_state": "connected"}

    def _disconnect(self, request: Recorded) -> tuple[int, Any]:
        return 200, {"connection_state": "disconnected"}

    def _heartbeat(self, request: Recorded) -> tuple[int, Any]:
        return 200, {"sent_at": request.json()["sent_at"], "received_at": "now"}

    def _ping(self, request: Recorded) -> tuple[int, Any]:
        agent_token = self._agent_token(request)
        if agent_token is None:
            return 401, {"message": "unknown agent"}
        deadline = time.monotonic() + float(request.query.get("wait", "0"))
        with self._lock:
            if self.ping_actions:
                action = self.ping_actions.pop(0)
                job = self._assign(agent_token)
                return 200, {"action": action, **({"job": {"id": job.id}} if job else {})}
            while not self._closed:
                job = self._assign(agent_token)
                if job is not None:
                    return 200, {"job": {"id": job.id}}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
        return 200, {}

    def _assign(self, agent_token: str) -> FakeJob | None:
        for job in self.jobs.values():
            if job.agent_token == agent_token and job.state == "assigned":
                return job
        for job in self.jobs.values():
            if job.state == "scheduled":
                job.state = "assigned"
                job.agent_token = agent_token
                return job
        return None

    def _accept(self, request: Recorded) -> tuple[int, Any]:
        job = self.jobs.get(request.job_id or "")
        if job is None or job.agent_token != self._agent_token(request):
            return 422, {"message": "job is not assigned to this agent"}
        with self._lock:
            job.state = "accepted"
        return 200, {
            "id": job.id,
            "state": "accepted",
            "env": job.env,
            "token": job.token,
            "chunks_max_size_bytes": job.chunks_max_size_bytes,
            "chunks_interval_seconds": 1,
            "step": {},
        }

    def _start(self, request: Recorded) -> tuple[int, Any]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        with self._lock:
            if job.state == "accepted":
                job.state = "running"
        return 200, {}

    def _chunks(self, request: Recorded) -> tuple[int, Any]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        data = gzip.decompress(request.body)
        chunk = Chunk(
            sequence=int(request.query["sequence"]),
            offset=int(request.query["offset"]),
            size=int(request.query["size"]),
            data=data,
        )
        with self._lock:
            job.chunks.append(chunk)
        return 201, None

    def _state(self, request: Recorded) -> tuple[int, Any]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        return 200, {"state": job.state}

    def _finish(self, request: Recorded) -> tuple[int, Any]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        with self._lock:
            job.finish = request.json()
            job.state = CANCEL_STATES.get(job.state, "finished")
        return 200, {}


async def eventually(predicate: Callable[[], object], *, within: float = 20.0) -> None:
    """Wait until `predicate()` is truthy; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)
