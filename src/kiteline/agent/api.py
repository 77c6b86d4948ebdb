"""The Agent API (/v3) client: one method per endpoint, with buildkite-agent's retry policies."""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from kiteline import __version__

log = logging.getLogger("kiteline.agent")

REQUEST_TIMEOUT_SECONDS = 60.0
AGENT_BUILD = "x"  # buildkite-agent's marker for builds not made by its release pipeline

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def go_arch() -> str:
    """The machine architecture named as Go names it (`amd64`, `arm64`), as the protocol expects."""
    machine = platform.machine().lower()
    return _GO_ARCH.get(machine, machine)


USER_AGENT = f"kiteline-agent/{__version__} ({platform.system().lower()}; {go_arch()})"


def utc_timestamp() -> str:
    """UTC RFC3339 with fractional seconds and `Z`, as `started_at`/`finished_at` expect."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local_timestamp() -> str:
    """RFC3339 in the local zone, as buildkite-agent sends heartbeat `sent_at`."""
    return datetime.now().astimezone().isoformat(timespec="microseconds")


T = TypeVar("T")


class ApiError(Exception):
    """A failed call; `status` is None for network errors and undecodable responses.

    `reason` is what the server said (its JSON `message`, else the status phrase), or the
    network error.
    """

    def __init__(
        self, message: str, *, status: int | None, retryable: bool, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.reason = reason or message


@dataclass(frozen=True)
class RetryPolicy:
    """How often one endpoint is tried: `attempts` tries, waiting `delay` growing by `backoff`."""

    attempts: int
    delay: float
    backoff: float = 1.0
    max_delay: float = 120.0
    network_only: bool = False
    """Retry only when no HTTP answer came back (accept abandons a job on any HTTP status)."""

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt` (2, 3, …)."""
        return min(self.max_delay, self.delay * self.backoff ** (attempt - 2))


# Spec §2.0. Exponential policies: start/chunks/finish, as long in all as buildkite-agent's
# (start about 2 minutes, chunks and finish about 10), but with waits capped at 16 s: after a
# server restart the agent is back within 16 s, not the minute or two doubling would reach.
REGISTER = RetryPolicy(attempts=30, delay=10)
CONNECT = RetryPolicy(attempts=10, delay=5)
HEARTBEAT = RetryPolicy(attempts=10, delay=5)
PING = RetryPolicy(attempts=1, delay=0)  # the worker's ping loop backs off itself
ACCEPT = RetryPolicy(attempts=30, delay=5, network_only=True)
START = RetryPolicy(attempts=11, delay=2, backoff=2, max_delay=16)
CHUNK = RetryPolicy(attempts=42, delay=1, backoff=2, max_delay=16)
JOB_STATE = RetryPolicy(attempts=1, delay=0)  # polled again on the next tick anyway
FINISH = RetryPolicy(attempts=42, delay=1, backoff=2, max_delay=16)
DISCONNECT = RetryPolicy(attempts=4, delay=1)
# `buildkite-agent <subcommand>` calls from inside a job, and artifact transfers: waits of
# 1, 2, 4, 8, then 16 s, so a command rides out a server restart of a minute or two and
# gives up after about two and a half minutes of server trouble.
IN_JOB = RetryPolicy(attempts=13, delay=1, backoff=2, max_delay=16)

BACKOFF_SEQUENCE_HEADER = "X-Buildkite-Backoff-Sequence"


class ApiResponse(BaseModel):
    """A response body: keys this client does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


class Registration(ApiResponse):
    id: str = ""
    name: str = ""
    access_token: str
    endpoint: str = ""
    request_headers: dict[str, str] | None = None
    ping_interval: float = 10
    job_status_interval: float = 1
    heartbeat_interval: float = 60
    meta_data: list[str] = Field(default_factory=list)

    @field_validator("ping_interval", "job_status_interval", "heartbeat_interval")
    @classmethod
    def _positive_or_default(cls, value: float, info: ValidationInfo) -> float:
        # A zero interval would make the agent spin; buildkite-agent itself would crash on it.
        if value > 0:
            return value
        return float(cls.model_fields[info.field_name or ""].default)


class PingJob(ApiResponse):
    id: str


class Ping(ApiResponse):
    action: str = ""
    message: str = ""
    job: PingJob | None = None
    endpoint: str = ""
    request_headers: dict[str, str] | None = None


class Job(ApiResponse):
    id: str
    env: dict[str, str] = Field(default_factory=dict)
    token: str = ""
    chunks_max_size_bytes: int = 0
    chunks_interval_seconds: float = 1
    log_max_size_bytes: int = 0


class JobState(ApiResponse):
    state: str = ""


@dataclass(frozen=True)
class RegisterRequest:
    name: str
    hostname: str
    os: str
    arch: str
    meta_data: list[str]
    pid: int
    script_eval_enabled: bool = True
    ignore_in_dispatches: bool = False
    version: str = __version__
    build: str = AGENT_BUILD
    features: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogChunk:
    sequence: int
    offset: int
    size: int
    gzipped: bytes


@dataclass(frozen=True)
class JobFinish:
    exit_status: int
    signal: str | None
    signal_reason: str | None
    chunks_failed_count: int
    finished_at: str
    """When the job ended here (`utc_timestamp`), not when the finish call gets through."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"exit_status": str(self.exit_status)}
        if self.signal:
            body["signal"] = self.signal
        if self.signal_reason:
            body["signal_reason"] = self.signal_reason
        body["finished_at"] = self.finished_at
        body["chunks_failed_count"] = self.chunks_failed_count
        return body


@dataclass
class Session:
    """What every client of one worker shares: the endpoint and server-specified headers."""

    endpoint: str
    request_headers: dict[str, str] = field(default_factory=dict)

    def update_request_headers(self, headers: Mapping[str, str] | None) -> None:
        # Absent leaves them, an empty map clears them; only Buildkite-* keys are kept.
        if headers is None:
            return
        self.request_headers = {
            key: value for key, value in headers.items() if key.startswith("Buildkite-")
        }


def path_id(value: str) -> str:
    """An id escaped for a URL path, with `.` as `%2E` as buildkite-agent does ("Rails-safe")."""
    return quote(value, safe="").replace(".", "%2E")


class AgentApi:
    """Calls the Agent API with one token; `with_token` gives a sibling for job-scoped calls."""

    def __init__(self, http: httpx.AsyncClient, session: Session, token: str) -> None:
        self._http = http
        self.session = session
        self.token = token

    @property
    def http(self) -> httpx.AsyncClient:
        """The bare HTTP client, for transfers that must not carry the token (artifacts)."""
        return self._http

    def with_token(self, token: str) -> AgentApi:
        return AgentApi(self._http, self.session, token)

    async def register(self, request: RegisterRequest) -> Registration:
        body = {
            "name": request.name,
            "hostname": request.hostname,
            "os": request.os,
            "arch": request.arch,
            "script_eval_enabled": request.script_eval_enabled,
            "ignore_in_dispatches": request.ignore_in_dispatches,
            "version": request.version,
            "build": request.build,
            "meta_data": request.meta_data,
            "pid": request.pid,
            "features": request.features,
        }
        response = await self.call("POST", "register", REGISTER, json=body)
        registration = decode(Registration, response)
        self.session.update_request_headers(registration.request_headers)
        if registration.endpoint:
            self.session.endpoint = registration.endpoint
        return registration

    async def connect(self) -> None:
        await self.call("POST", "connect", CONNECT)

    async def disconnect(self) -> None:
        await self.call("POST", "disconnect", DISCONNECT)

    async def heartbeat(self) -> None:
        response = await self.call(
            "POST", "heartbeat", HEARTBEAT, json={"sent_at": local_timestamp()}
        )
        decode_json(response)

    async def ping(self, *, wait: float, endpoint: str | None = None) -> Ping:
        """Ask for work; the server may hold the request up to `wait` seconds (long poll)."""
        response = await self.call(
            "GET",
            "ping",
            PING,
            params={"wait": _seconds(wait)},
            request_timeout=wait + REQUEST_TIMEOUT_SECONDS,
            endpoint=endpoint,
        )
        ping = decode(Ping, response)
        self.session.update_request_headers(ping.request_headers)
        return ping

    async def accept_job(self, job_id: str) -> Job:
        return decode(Job, await self.call("PUT", f"jobs/{path_id(job_id)}/accept", ACCEPT))

    async def start_job(self, job_id: str, *, started_at: str) -> None:
        await self.call(
            "PUT", f"jobs/{path_id(job_id)}/start", START, json={"started_at": started_at}
        )

    async def upload_chunk(self, job_id: str, chunk: LogChunk) -> None:
        await self.call(
            "POST",
            f"jobs/{path_id(job_id)}/chunks",
            CHUNK,
            params={"sequence": chunk.sequence, "offset": chunk.offset, "size": chunk.size},
            content=chunk.gzipped,
            headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        )

    async def job_state(self, job_id: str) -> str:
        return decode(JobState, await self.call("GET", f"jobs/{path_id(job_id)}", JOB_STATE)).state

    async def finish_job(self, job_id: str, finish: JobFinish) -> None:
        await self.call("PUT", f"jobs/{path_id(job_id)}/finish", FINISH, json=finish.body())

    async def call(
        self,
        method: str,
        path: str,
        policy: RetryPolicy,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        endpoint: str | None = None,
        backoff_sequence: bool = False,
    ) -> httpx.Response:
        """One endpoint call with the token, retried per `policy`; raises ApiError.

        `backoff_sequence` sends the retry counter as buildkite-agent does on pipeline uploads.
        """
        url = f"{(endpoint or self.session.endpoint).rstrip('/')}/{path.lstrip('/')}"

        async def send(attempt: int) -> httpx.Response:
            request_headers = {
                **self.session.request_headers,
                "Authorization": f"Token {self.token}",
                "User-Agent": USER_AGENT,
                **(headers or {}),
            }
            if backoff_sequence:
                request_headers[BACKOFF_SEQUENCE_HEADER] = str(attempt - 1)
            return await self._http.request(
                method,
                url,
                json=json,
                content=content,
                params=params,
                headers=request_headers,
                timeout=request_timeout,
            )

        return await send_with_retries(policy, f"{method} {path}", send)


async def send_with_retries(
    policy: RetryPolicy, what: str, send: Callable[[int], Awaitable[httpx.Response]]
) -> httpx.Response:
    """`send(attempt)` until a 2xx answer, retrying 429, 5xx and network errors per `policy`.

    `what` names the request in errors (`POST jobs/…/pipelines`). A successful streamed
    response is returned open; the caller closes it.
    """
    for attempt in range(1, policy.attempts + 1):
        if attempt > 1:
            await asyncio.sleep(policy.wait_before(attempt))
        try:
            response = await send(attempt)
        except httpx.TransportError as exc:
            error = ApiError(f"{what}: {type(exc).__name__}: {exc}", status=None, retryable=True)
        else:
            if response.is_success:
                return response
            await response.aread()
            error = _status_error(what, response)
            if policy.network_only:
                raise error
        if not error.retryable or attempt == policy.attempts:
            raise error
        log.warning("%s (attempt %d of %d, retrying)", error, attempt, policy.attempts)
    raise AssertionError("unreachable: a retry policy has at least one attempt")


def _status_error(what: str, response: httpx.Response) -> ApiError:
    message = response.reason_phrase
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        message = payload["message"]
        # A 422 says only "Validation Failed"; the why is in `errors: [{field, code}]`.
        details = [_error_detail(error) for error in payload.get("errors") or []]
        if details:
            message = f"{message}: {'; '.join(details)}"
    status = response.status_code
    return ApiError(
        f"{what}: HTTP {status}: {message}",
        status=status,
        retryable=status == 429 or status >= 500,
        reason=message,
    )


def _error_detail(error: Any) -> str:
    if isinstance(error, dict):
        return ": ".join(str(error[key]) for key in ("field", "code") if error.get(key))
    return str(error)


def decode_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ApiError(
            f"{response.request.method} {response.request.url.path}: response is not JSON",
            status=None,
            retryable=True,
        ) from exc


def decode(kind: type[T], response: httpx.Response) -> T:
    """The response body as `kind` (a model, or a type such as `list[str]`)."""
    try:
        return _adapter(kind).validate_python(decode_json(response))
    except ValidationError as exc:
        raise ApiError(
            f"{response.request.method} {response.request.url.path}: unexpected response: {exc}",
            status=None,
            retryable=True,
        ) from exc


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: type[T]) -> TypeAdapter[T]:
    # Building an adapter costs far more than a ping; each type gets one, kept for good.
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
