"""The one implementation behind both clients: operations as generators of effects.

Every SDK call is written once, as a generator that yields `Request`s and `Sleep`s and is sent
back each request's `httpx.Response` (a "sans-I/O" operation). `Client` performs the effects
with `httpx.Client` and `time.sleep`, `AsyncClient` with `httpx.AsyncClient` and
`asyncio.sleep`; the rules (URLs, which host gets the token, 429 waits and retries, error
mapping, pagination, checksums) live here and in `operations/`, never in a driver.

An operation that returns one value is an `Op[T]`; one that yields items to the caller as it
goes (a list, a log stream) is a `Stream[T]`: it yields its items between its effects.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from kiteline.client.config import ClientConfig
from kiteline.client.errors import ApiConnectionError, ApiError, RateLimited, error_class

T = TypeVar("T")
Y = TypeVar("Y")
M = TypeVar("M", bound=BaseModel)

#: Reset headers are whole seconds, rounded either way by servers; a little extra avoids a
#: retry that lands just before the window turns.
RATE_LIMIT_MARGIN_SECONDS = 0.25
#: Without any reset header, a 429 is retried after this long.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 1.0


class Sink(Protocol):
    """Where a streamed response body goes, chunk by chunk."""

    def write(self, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class Request:
    """One HTTP request; with a `sink`, a successful answer's body is streamed into it."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    sink: Sink | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Effect = Request | Sleep
Outcome = httpx.Response | None
Op = Generator[Effect, Outcome, T]
Stream = Generator[Effect | T, Outcome, None]


def request(
    config: ClientConfig,
    method: str,
    url: str,
    *,
    params: Sequence[tuple[str, str]] | None = None,
    json: Any = None,
    accept: str = "application/json",
    sink: Sink | None = None,
) -> Request:
    headers = {"User-Agent": config.user_agent, "Accept": accept}
    if config.trusts(url):
        headers["Authorization"] = f"Bearer {config.token}"
    query = tuple(params) if params is not None else None
    return Request(method, url, params=query, json=json, headers=headers, sink=sink)


def send(config: ClientConfig, request: Request, *, redirects: bool = False) -> Op[httpx.Response]:
    """Perform `request`, waiting out 429s as the server asks; any other error is raised.

    A 429 is retried after `RateLimit-Reset` seconds (else `Retry-After`), at most
    `config.max_retries` times, and only if that wait is within `config.max_rate_limit_wait`.
    """
    retries = 0
    while True:
        response = yield request
        assert response is not None
        if response.status_code != 429:
            break
        wait = rate_limit_wait(response)
        if retries >= config.max_retries or wait > config.max_rate_limit_wait:
            raise api_error(response, retry_after=wait)
        retries += 1
        yield Sleep(wait + RATE_LIMIT_MARGIN_SECONDS)
    if response.is_redirect and not redirects:
        location = response.headers.get("location", "")
        raise api_error(response, message=f"Unexpected redirect to {location}")
    if response.is_error:
        raise api_error(response)
    return response


def get_json(
    config: ClientConfig, url: str, params: Sequence[tuple[str, str]] | None = None
) -> Op[Any]:
    response = yield from send(config, request(config, "GET", url, params=params))
    return json_body(response)


def get_model(
    config: ClientConfig,
    url: str,
    model: type[M],
    params: Sequence[tuple[str, str]] | None = None,
) -> Op[M]:
    return model.model_validate((yield from get_json(config, url, params)))


def write_model(config: ClientConfig, method: str, url: str, model: type[M], body: Any) -> Op[M]:
    """A POST/PUT/PATCH whose answer is one object."""
    response = yield from send(config, request(config, method, url, json=body))
    return model.model_validate(json_body(response))


def write(config: ClientConfig, method: str, url: str, body: Any = None) -> Op[None]:
    """A write whose answer carries nothing the caller needs (204s, acknowledgements)."""
    yield from send(config, request(config, method, url, json=body))


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        kind = response.headers.get("content-type", "no content type")
        raise api_error(response, message=f"Expected a JSON answer, got {kind}") from error


def rate_limit_wait(response: httpx.Response) -> float:
    """Seconds until the exhausted budget resets: the `RateLimit-*Reset` of each scope that has
    nothing remaining (all of them if none says so), else `Retry-After`, else a second."""
    headers = response.headers
    scopes = [
        (headers.get(f"{prefix}Reset"), headers.get(f"{prefix}Remaining"))
        for prefix in ("RateLimit-", "RateLimit-User-")
    ]
    resets = [_seconds(reset) for reset, _ in scopes if reset is not None]
    exhausted = [_seconds(reset) for reset, left in scopes if reset is not None and left == "0"]
    known = [wait for wait in (exhausted or resets) if wait is not None]
    if known:
        return max(known)
    retry_after = headers.get("Retry-After")
    wait = _seconds(retry_after) if retry_after is not None else None
    return DEFAULT_RATE_LIMIT_WAIT_SECONDS if wait is None else wait


def _seconds(value: str) -> float | None:
    """Delta seconds, or an HTTP date (Retry-After allows both)."""
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def api_error(
    response: httpx.Response, *, message: str | None = None, retry_after: float | None = None
) -> ApiError:
    """The exception for an error answer, carrying the server's `message` and JSON body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if message is None:
        given = _message_of(body)
        message = str(given) if given else (response.text[:200].strip() or response.reason_phrase)
    context: dict[str, Any] = {
        "body": body,
        "method": response.request.method,
        "url": str(response.request.url),
    }
    if response.status_code == 429:
        return RateLimited(429, message, retry_after=retry_after, **context)
    return error_class(response.status_code)(response.status_code, message, **context)


def _message_of(body: Any) -> str | None:
    """REST's `{"message": ...}`, or the first of GraphQL's `{"errors": [{"message": ...}]}`."""
    if not isinstance(body, dict):
        return None
    if body.get("message"):
        return str(body["message"])
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or "") or None
    return None


def http_request(http: httpx.Client | httpx.AsyncClient, effect: Request) -> httpx.Request:
    """The httpx request for an effect, with the client's timeouts."""
    return http.build_request(
        effect.method, effect.url, params=effect.params, json=effect.json, headers=effect.headers
    )


def connection_error(effect: Request, error: httpx.TransportError) -> ApiConnectionError:
    """What a driver raises (into the operation) when a request never got an answer."""
    if isinstance(error, httpx.TimeoutException):
        reason = f"no answer within the timeout ({type(error).__name__})"
    else:
        reason = str(error) or type(error).__name__
    host = httpx.URL(effect.url).host
    return ApiConnectionError(f"could not reach {host}: {reason}", url=effect.url)


class Finished:
    """What `Steps.next` gives once the operation has returned."""


FINISHED = Finished()


class Steps(Generic[Y, T]):
    """An operation walked by a driver: `next()` gives its next effect or item, after handing
    it the outcome (or the exception) of the effect before; `value` is what it returned."""

    def __init__(self, operation: Generator[Effect | Y, Outcome, T]) -> None:
        self.operation = operation
        self._returned: tuple[T] | None = None
        self._outcome: Outcome = None
        self._error: Exception | None = None

    def next(self) -> Effect | Y | Finished:
        outcome, error = self._outcome, self._error
        self._outcome, self._error = None, None
        try:
            if error is not None:
                return self.operation.throw(error)
            return self.operation.send(outcome)
        except StopIteration as stop:
            self._returned = (stop.value,)
            return FINISHED

    def succeeded(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def failed(self, error: Exception) -> None:
        """Raised inside the operation at its next step, so that its own cleanup runs."""
        self._error = error

    @property
    def value(self) -> T:
        if self._returned is None:
            raise RuntimeError("the operation has not returned yet")
        return self._returned[0]

    def close(self) -> None:
        self.operation.close()
