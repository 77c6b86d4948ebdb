"""The delivery loop: fans outbox events out into deliveries, leases the ones that are due,
POSTs them, and records every attempt. It runs beside the sweeps (in the server, or in
`kiteline worker`), never inside a request: a slow or dead receiver costs a task waiting on
a socket, bounded by the timeout, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from types import TracebackType

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.kit.db import transaction, utcnow
from kiteline.server.kit.instruments import Instruments
from kiteline.server.kit.urls import Urls
from kiteline.server.sources import statuses
from kiteline.server.sources.statuses import StatusClaim
from kiteline.server.webhooks import fanout, queue
from kiteline.server.webhooks.queue import Claim, DeliveryState, Outcome, RetryPolicy
from kiteline.server.webhooks.signing import request_headers
from kiteline.settings import Settings

log = logging.getLogger("kiteline.webhooks")

#: How much of a receiver's answer an attempt keeps.
EXCERPT_BYTES = 1024
#: The `outcome` label of an attempt, by the state it left its delivery in.
ATTEMPT_OUTCOMES = {
    DeliveryState.SUCCEEDED: "succeeded",
    DeliveryState.PENDING: "retrying",
    DeliveryState.FAILED: "failed",
}


def public_base_url(settings: Settings) -> str:
    """Where `url`/`web_url` in payloads point: the configured public URL, else this server."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def lease_for(settings: Settings) -> timedelta:
    """Long enough to send (bounded by the timeout) and record; a worker that dies holding a
    lease delays that delivery by this much, then another worker sends it again."""
    return timedelta(seconds=2 * settings.webhook_timeout_seconds + 5)


class Clients:
    """One connection pool per TLS setting, opened on first use."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def get(self, verify: bool) -> httpx.AsyncClient:
        if verify not in self._clients:
            self._clients[verify] = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout), verify=verify, follow_redirects=False
            )
        return self._clients[verify]

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        for client in self._clients.values():
            await client.aclose()


async def send(client: httpx.AsyncClient, claim: Claim, seconds: float) -> Outcome:
    """One attempt: POST the body with its headers; the whole exchange is bounded by
    `seconds`, and only the start of the answer is read."""
    body = claim.payload.encode()
    headers = request_headers(
        event=claim.event,
        request_id=claim.request_id,
        body=body,
        token=claim.token,
        mode=claim.token_mode,
    )
    started_at = utcnow()
    clock = time.monotonic()
    status: int | None = None
    excerpt = bytearray()
    error: str | None = None
    try:
        async with asyncio.timeout(seconds):
            async with client.stream("POST", claim.url, content=body, headers=headers) as answer:
                status = answer.status_code
                async for chunk in answer.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
    except TimeoutError:
        error = f"no complete answer within {seconds:g}s"
    except httpx.HTTPError as problem:
        error = f"{type(problem).__name__}: {problem}".rstrip(": ")
    return Outcome(
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
        status_code=status,
        response_excerpt=bytes(excerpt[:EXCERPT_BYTES]).decode("utf-8", "replace")
        if status is not None
        else None,
        error=error,
    )


async def _attempt(
    sessions: async_sessionmaker[AsyncSession],
    clients: Clients,
    claim: Claim,
    settings: Settings,
    instruments: Instruments,
) -> None:
    outcome = await send(clients.get(claim.tls_verify), claim, settings.webhook_timeout_seconds)
    try:
        async with transaction(sessions) as session:
            state = await queue.record(session, claim, outcome, RetryPolicy.from_settings(settings))
    except Exception:
        log.exception("recording attempt %d of %s failed", claim.attempt, claim.request_id)
        return
    if state is not None:
        instruments.webhook_attempts.labels(ATTEMPT_OUTCOMES[state]).inc()


async def post_status(
    client: httpx.AsyncClient, claim: StatusClaim, settings: Settings
) -> tuple[int | None, str | None]:
    """One attempt at a commit status: the host's answer code, or what went wrong."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            answer = await client.post(
                claim.url,
                json=claim.body,
                headers=statuses.auth_headers(claim.provider, settings),
            )
    except TimeoutError:
        return None, f"no answer within {settings.webhook_timeout_seconds:g}s"
    except httpx.HTTPError as problem:
        return None, f"{type(problem).__name__}: {problem}".rstrip(": ")
    error = None if answer.is_success else answer.text[:EXCERPT_BYTES]
    return answer.status_code, error


async def _attempt_status(
    sessions: async_sessionmaker[AsyncSession],
    clients: Clients,
    claim: StatusClaim,
    settings: Settings,
) -> None:
    status_code, error = await post_status(clients.get(True), claim, settings)
    policy = RetryPolicy.from_settings(settings)
    outcome = Outcome(started_at=utcnow(), duration_ms=0, status_code=status_code, error=error)
    retry_at = (
        utcnow() + policy.delay(claim.attempt)
        if not outcome.succeeded and outcome.retriable and claim.attempt < policy.max_attempts
        else None
    )
    try:
        async with transaction(sessions) as session:
            await statuses.record(
                session, claim, status_code=status_code, error=error, retry_at=retry_at
            )
    except Exception:
        log.exception("recording commit status attempt %d of %s failed", claim.attempt, claim.url)


async def _step(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    urls: Urls,
    free: int,
) -> tuple[bool, list[Claim], list[StatusClaim]]:
    """Fan out one batch and lease up to `free` due deliveries and commit statuses; says
    whether more events wait."""
    async with transaction(sessions) as session:
        taken = await fanout.fan_out(session, urls, now=utcnow(), settings=settings)
    claims: list[Claim] = []
    status_claims: list[StatusClaim] = []
    if free > 0:
        async with transaction(sessions) as session:
            claims = await queue.claim_due(
                session, now=utcnow(), limit=free, lease=lease_for(settings)
            )
            status_claims = await statuses.claim_due(
                session, now=utcnow(), limit=free - len(claims), lease=lease_for(settings)
            )
    return taken >= fanout.BATCH, claims, status_claims


async def run_delivery(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    stop: asyncio.Event,
    instruments: Instruments,
) -> None:
    """Until `stop`: attempts run as tasks (at most `webhook_concurrency`), and the loop comes
    round again when one ends, so a webhook's next event follows its previous one at once."""
    urls = Urls(public_base_url(settings))
    in_flight: set[asyncio.Task[None]] = set()
    wake = asyncio.Event()

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        wake.set()

    async with Clients(settings.webhook_timeout_seconds) as clients:
        try:
            while not stop.is_set():
                wake.clear()
                more = False
                try:
                    free = settings.webhook_concurrency - len(in_flight)
                    more, claims, status_claims = await _step(sessions, settings, urls, free)
                except Exception:
                    log.exception("webhook delivery failed a round; it goes on")
                    claims, status_claims = [], []
                attempts = [
                    _attempt(sessions, clients, claim, settings, instruments) for claim in claims
                ]
                attempts += [
                    _attempt_status(sessions, clients, claim, settings) for claim in status_claims
                ]
                for attempt in attempts:
                    task = asyncio.create_task(attempt)
                    in_flight.add(task)
                    task.add_done_callback(finished)
                if not more:
                    await _pause(stop, wake, settings.webhook_poll_interval_seconds)
        finally:
            # Attempts under way end within the timeout; let them be recorded.
            if in_flight:
                await asyncio.wait(in_flight)


async def _pause(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
