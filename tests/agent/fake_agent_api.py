"""A fake Agent API (/v3) on 127.0.0.1 for the agent's tests: records requests, hands out jobs."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import fnmatch
import gzip
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
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
    # In-job commands (job token):
    ("POST", re.compile(r"jobs/(?P<job>[^/]+)/pipelines"), "pipelines"),
    ("GET", re.compile(r"jobs/(?P<job>[^/]+)/pipelines/(?P<upload>[^/]+)"), "pipeline_status"),
    ("POST", re.compile(r"jobs/(?P<job>[^/]+)/data/(?P<verb>set|get|exists|keys)"), "job_data"),
    ("POST", re.compile(r"builds/(?P<build>[^/]+)/data/(?P<verb>get|exists|keys)"), "build_data"),
    ("POST", re.compile(r"jobs/(?P<job>[^/]+)/annotations"), "annotate"),
    ("DELETE", re.compile(r"jobs/(?P<job>[^/]+)/annotations/(?P<context>[^/]+)"), "unannotate"),
    ("POST", re.compile(r"jobs/(?P<job>[^/]+)/artifacts"), "create_artifacts"),
    ("PUT", re.compile(r"jobs/(?P<job>[^/]+)/artifacts"), "update_artifacts"),
    ("GET", re.compile(r"builds/(?P<build>[^/]+)/artifacts/search"), "search_artifacts"),
    ("POST", re.compile(r"steps/(?P<step>[^/]+)/export"), "step_export"),
    # Artifact storage, outside /v3: authorised by the URL's token alone.
    ("POST", re.compile(r"store/uploads/(?P<artifact>[^/]+)"), "store_upload"),
    ("GET", re.compile(r"store/downloads/(?P<artifact>[^/]+)"), "store_download"),
]
SHARED_UPLOAD = "shared"  # the upload path of `upload_instructions` (artifact found by form key)


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
    path_params: dict[str, str] = field(default_factory=dict)  # URL-decoded
    received_at_wall: float = 0.0  # time.time(), to compare with times the agent reports

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[tuple[str, str | None, bytes]]:
        """A multipart/form-data body as (field name, filename, content), in order."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        return [
            (
                str(part.get_param("name", header="content-disposition")),
                part.get_filename(),
                part.get_payload(decode=True),
            )
            for part in message.iter_parts()  # type: ignore[attr-defined]
        ]

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
class FakeArtifact:
    id: str
    build_id: str
    path: str
    content: bytes | None
    sha1sum: str
    sha256sum: str
    file_size: int
    step: str = ""
    job_id: str = ""
    glob_path: str = ""
    state: str = "new"


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
        # In-job state and knobs:
        self.meta_data: dict[str, dict[str, str]] = {}  # build id -> key -> value
        self.artifacts: dict[str, FakeArtifact] = {}
        self.step_exports: dict[tuple[str, str], str] = {}  # (step, attribute) -> output
        self.pipeline_uploads: dict[str, Any] = {}  # uuid -> pipeline
        self.pipeline_rejection: str | None = None  # answer uploads 422 with this reason
        self.async_pipeline_uploads = False  # answer 202 and report `pending` once
        self.async_pipeline_final_state = "applied"
        self.shared_upload_instructions = False  # `upload_instructions` instead of per artifact
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
                "BUILDKITE_STEP_ID": str(uuid.uuid4()),
                "BUILDKITE_STEP_KEY": "",
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

    def add_artifact(
        self,
        build_id: str,
        path: str,
        content: bytes,
        *,
        step: str = "",
        sha256sum: str | None = None,
        state: str = "finished",
    ) -> FakeArtifact:
        """An artifact already stored (for downloads); `sha256sum` may lie, to corrupt it."""
        artifact = FakeArtifact(
            id=str(uuid.uuid4()),
            build_id=build_id,
            path=path,
            content=content,
            sha1sum=hashlib.sha1(content).hexdigest(),
            sha256sum=sha256sum or hashlib.sha256(content).hexdigest(),
            file_size=len(content),
            step=step,
            state=state,
        )
        with self._lock:
            self.artifacts[artifact.id] = artifact
        return artifact

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

            do_POST = do_PUT = do_DELETE = do_GET

        return Handler

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = split.path.removeprefix("/v3/").lstrip("/")
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
        path_params = {name: unquote(value) for name, value in match.groupdict().items()}
        job_id = path_params.get("job")
        request = Recorded(
            route=route,
            method=handler.command,
            raw_path=split.path,
            query=dict(parse_qsl(split.query)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            job_id=job_id,
            received_at=time.monotonic(),
            path_params=path_params,
            received_at_wall=time.time(),
        )
        with self._lock:
            self.requests.append(request)
            injected = self._failures.get(route)
            status = injected.pop(0) if injected else None
        if status is not None:
            self._respond(handler, status, {"message": f"injected {status}"})
            return
        answer: Callable[[Recorded], tuple[Any, ...]] = getattr(self, f"_{route}")
        self._respond(handler, *answer(request))

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        """JSON `payload` (bytes are sent as they are; None sends no body)."""
        raw = isinstance(payload, bytes)
        body = payload if raw else b"" if payload is None else json.dumps(payload).encode()
        # The agent drops a long-polling ping when it stops; there is no one left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(status)
            if payload is not None:
                content_type = "application/octet-stream" if raw else "application/json"
                handler.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
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

    # -- in-job commands -----------------------------------------------------------------------

    def _caller(self, request: Recorded) -> FakeJob | None:
        """The job whose token made a call that names no job (builds/…, steps/…)."""
        token = request.authorization.removeprefix("Token ")
        return next((job for job in self.jobs.values() if token and job.token == token), None)

    def _pipelines(self, request: Recorded) -> tuple[Any, ...]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        if self.pipeline_rejection is not None:
            errors = [{"field": "configuration", "code": self.pipeline_rejection}]
            return 422, {"message": "Validation Failed", "errors": errors}
        body = request.json()
        with self._lock:
            self.pipeline_uploads.setdefault(body["uuid"], body["pipeline"])
        if self.async_pipeline_uploads:
            location = f"/v3/jobs/{job.id}/pipelines/{body['uuid']}"
            return 202, {}, {"Location": location, "Retry-After": "0"}
        return 201, {"uuid": body["uuid"], "state": "applied", "message": None}

    def _pipeline_status(self, request: Recorded) -> tuple[Any, ...]:
        if self._job_for(request) is None:
            return 401, {"message": "invalid job token"}
        upload = request.path_params["upload"]
        if upload not in self.pipeline_uploads:
            return 404, {"message": "no such upload"}
        polls = [r for r in self.calls("pipeline_status") if r.path_params["upload"] == upload]
        if len(polls) == 1:
            return 200, {"state": "pending", "message": None}, {"Retry-After": "0"}
        return 200, {"state": self.async_pipeline_final_state, "message": "as configured"}

    def _job_data(self, request: Recorded) -> tuple[Any, ...]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        return self._data(job.env["BUILDKITE_BUILD_ID"], request)

    def _build_data(self, request: Recorded) -> tuple[Any, ...]:
        if self._caller(request) is None:
            return 401, {"message": "invalid job token"}
        return self._data(request.path_params["build"], request)

    def _data(self, build_id: str, request: Recorded) -> tuple[Any, ...]:
        verb = request.path_params["verb"]
        with self._lock:
            values = self.meta_data.setdefault(build_id, {})
            if verb == "keys":
                return 200, sorted(values)
            body = request.json()
            if verb == "set":
                values[body["key"]] = body["value"]
                return 200, body
        if verb == "exists":
            return 200, {"exists": body["key"] in values}
        if body["key"] not in values:
            return 404, {"message": f"No value for meta-data key {body['key']!r}"}
        return 200, {"key": body["key"], "value": values[body["key"]]}

    def _annotate(self, request: Recorded) -> tuple[Any, ...]:
        if self._job_for(request) is None:
            return 401, {"message": "invalid job token"}
        return 200, {"id": str(uuid.uuid4()), "context": request.json().get("context", "default")}

    def _unannotate(self, request: Recorded) -> tuple[Any, ...]:
        if self._job_for(request) is None:
            return 401, {"message": "invalid job token"}
        return 204, None

    def _create_artifacts(self, request: Recorded) -> tuple[Any, ...]:
        job = self._job_for(request)
        if job is None:
            return 401, {"message": "invalid job token"}
        created = []
        for item in request.json()["artifacts"]:
            artifact = FakeArtifact(
                id=str(uuid.uuid4()),
                build_id=job.env["BUILDKITE_BUILD_ID"],
                path=item["path"],
                content=None,
                sha1sum=item["sha1sum"],
                sha256sum=item["sha256sum"],
                file_size=item["file_size"],
                step=job.env["BUILDKITE_STEP_KEY"] or job.env["BUILDKITE_STEP_ID"],
                job_id=job.id,
                glob_path=item["glob_path"],
            )
            created.append(artifact)
        with self._lock:
            self.artifacts.update((artifact.id, artifact) for artifact in created)
        answer: dict[str, Any] = {
            "id": request.json()["id"],
            "artifact_ids": [artifact.id for artifact in created],
            "upload_instructions": None,
            "per_artifact_instructions": {},
        }
        if self.shared_upload_instructions:
            answer["upload_instructions"] = self._instructions(SHARED_UPLOAD)
        else:
            answer["per_artifact_instructions"] = {
                artifact.id: self._instructions(artifact.id) for artifact in created
            }
        return 200, answer

    def _instructions(self, target: str) -> dict[str, Any]:
        # The URL's own path is wrong on purpose: the agent must swap in `action.path`.
        return {
            "action": {
                "url": f"{self.url}/not/this/path?token=upload-{target}",
                "method": "POST",
                "path": f"/store/uploads/{target}",
                "file_input": "artifact",
            },
            "data": {"key": "uploads/${artifact:path}", "acl": "private"},
        }

    def _update_artifacts(self, request: Recorded) -> tuple[Any, ...]:
        if self._job_for(request) is None:
            return 401, {"message": "invalid job token"}
        with self._lock:
            for item in request.json()["artifacts"]:
                self.artifacts[item["id"]].state = item["state"]
        return 200, {}

    def _search_artifacts(self, request: Recorded) -> tuple[Any, ...]:
        if self._caller(request) is None:
            return 401, {"message": "invalid job token"}
        query = request.query
        found = [
            artifact
            for artifact in self.artifacts.values()
            if artifact.build_id == request.path_params["build"]
            and artifact.state == query.get("state", artifact.state)
            and fnmatch.fnmatchcase(artifact.path, query.get("query") or "*")
            and artifact.step == query.get("scope", artifact.step)
        ]
        return 200, [
            {
                "id": artifact.id,
                "path": artifact.path,
                "file_size": artifact.file_size,
                "sha1sum": artifact.sha1sum,
                "sha256sum": artifact.sha256sum,
                "url": f"{self.url}/store/downloads/{artifact.id}",
                "job_id": artifact.job_id or None,
                "created_at": None,
            }
            for artifact in found
        ]

    def _step_export(self, request: Recorded) -> tuple[Any, ...]:
        if self._caller(request) is None:
            return 401, {"message": "invalid job token"}
        key = (request.path_params["step"], request.json()["attribute"])
        if key not in self.step_exports:
            return 404, {"message": "No step found"}
        return 200, {"output": self.step_exports[key]}

    def _store_upload(self, request: Recorded) -> tuple[Any, ...]:
        target = request.path_params["artifact"]
        if request.authorization or request.query.get("token") != f"upload-{target}":
            return 403, {"message": "only the signed URL authorises uploads"}
        form = request.form()
        fields = {name: content for name, _, content in form}
        if target == SHARED_UPLOAD:
            path = fields["key"].decode().removeprefix("uploads/")
            artifact = next(a for a in self.artifacts.values() if a.path == path)
        else:
            artifact = self.artifacts[target]
        with self._lock:
            artifact.content = fields["artifact"]
        return 201, None

    def _store_download(self, request: Recorded) -> tuple[Any, ...]:
        if request.authorization:
            return 403, {"message": "downloads are authorised by the URL alone"}
        artifact = self.artifacts.get(request.path_params["artifact"])
        if artifact is None or artifact.content is None:
            return 404, {"message": "no such artifact"}
        return 200, artifact.content


async def eventually(predicate: Callable[[], object], *, within: float = 20.0) -> None:
    """Wait until `predicate()` is truthy; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)
