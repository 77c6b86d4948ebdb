"""The delivery queue: enqueue a webhook's deliveries, lease the ones that are due (one at a
time per webhook, in order), record each attempt, retry with backoff, disable a webhook that
keeps failing, redeliver, and the history REST shows."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.users import service as users
from kiteline.server.webhooks import payloads
from kiteline.server.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from kiteline.server.webhooks.service import disable
from kiteline.server.webhooks.signing import TokenMode
from kiteline.settings import Settings


class DeliveryState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def enqueue(
    session: AsyncSession,
    webhook: Webhook,
    *,
    event: str,
    payload: str,
    event_id: int | None = None,
    redelivery_of: uuid.UUID | None = None,
) -> WebhookDelivery:
    """A pending delivery at the end of the webhook's queue, due now."""
    delivery = WebhookDelivery(
        request_id=uuid.uuid4(),
        webhook_id=webhook.id,
        event=event,
        event_id=event_id,
        redelivery_of=redelivery_of,
        payload=payload,
        state=DeliveryState.PENDING,
        attempts_count=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    return delivery


async def ping(
    session: AsyncSession, urls: Urls, organization: Organization, webhook: Webhook
) -> WebhookDelivery:
    """Queue a `ping` (on create, on update, and on request)."""
    sender = await users.get(session, webhook.created_by_id) if webhook.created_by_id else None
    objects = payloads.ping_objects(urls, organization, webhook)
    delivery = enqueue(
        session, webhook, event="ping", payload=payloads.body("ping", objects, sender)
    )
    await session.flush()
    return delivery


async def redeliver(
    session: AsyncSession, webhook: Webhook, delivery: WebhookDelivery
) -> WebhookDelivery:
    """Send a finished delivery's body again, as a new delivery (a new request id) queued
    after the others."""
    if delivery.state == DeliveryState.PENDING:
        raise Unprocessable("This delivery is still pending; it will be retried on its own")
    again = enqueue(
        session,
        webhook,
        event=delivery.event,
        payload=delivery.payload,
        event_id=delivery.event_id,
        redelivery_of=delivery.request_id,
    )
    await session.flush()
    return again


async def get_delivery(
    session: AsyncSession, webhook: Webhook, delivery_id: str
) -> WebhookDelivery:
    parsed = parse_uuid(delivery_id)
    delivery = (
        await session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.request_id == parsed, WebhookDelivery.webhook_id == webhook.id
            )
        )
        if parsed is not None
        else None
    )
    if delivery is None:
        raise NotFound.of("delivery")
    return delivery


async def list_deliveries(
    session: AsyncSession,
    webhook: Webhook,
    *,
    state: str | None,
    before_id: int | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Newest first; `before_id` is a keyset cursor."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    if state:
        query = query.where(WebhookDelivery.state == state)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    rows = await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    return list(rows)


async def attempts_of(
    session: AsyncSession, delivery_ids: list[int]
) -> dict[int, list[WebhookAttempt]]:
    found: dict[int, list[WebhookAttempt]] = {id_: [] for id_ in delivery_ids}
    if delivery_ids:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.id)
        )
        for attempt in rows:
            found[attempt.delivery_id].append(attempt)
    return found


@dataclass(frozen=True)
class Claim:
    """A delivery a worker may send now, with what it needs to send it."""

    delivery_id: int
    request_id: uuid.UUID
    lease_id: uuid.UUID
    attempt: int
    webhook_id: uuid.UUID
    url: str
    token: str
    token_mode: TokenMode
    tls_verify: bool
    event: str
    payload: str


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta
) -> list[Claim]:
    """Lease the deliveries that are due and first in their webhook's queue: a webhook gets
    its events one at a time, in order, and a retry holds back the ones behind it.
    PostgreSQL replicas skip each other's locked rows; SQLite has one writer."""
    earlier = aliased(WebhookDelivery)
    query = (
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until <= now),
            Webhook.enabled.is_(True),
            ~exists().where(
                earlier.webhook_id == WebhookDelivery.webhook_id,
                earlier.state == DeliveryState.PENDING,
                earlier.id < WebhookDelivery.id,
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
    claims = []
    for delivery, webhook in await session.execute(query):
        delivery.lease_id = uuid.uuid4()
        delivery.leased_until = now + lease
        claims.append(
            Claim(
                delivery_id=delivery.id,
                request_id=delivery.request_id,
                lease_id=delivery.lease_id,
                attempt=delivery.attempts_count + 1,
                webhook_id=webhook.id,
                url=webhook.url,
                token=webhook.token,
                token_mode=TokenMode(webhook.token_mode),
                tls_verify=webhook.tls_verify,
                event=delivery.event,
                payload=delivery.payload,
            )
        )
    return claims


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status (and the start of the body), or an error."""

    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    response_excerpt: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retriable(self) -> bool:
        """Connection errors, timeouts, 5xx and 429 are worth another try; other answers
        (a 4xx, a redirect) would only repeat."""
        code = self.status_code
        return code is None or code >= 500 or code == 429

    def describe(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code is not None else str(self.error)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    disable_after_failures: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.webhook_max_attempts,
            backoff_base_seconds=settings.webhook_backoff_base_seconds,
            backoff_max_seconds=settings.webhook_backoff_max_seconds,
            disable_after_failures=settings.webhook_disable_after_failures,
        )

    def delay(self, attempt: int) -> timedelta:
        """Exponential, capped, with jitter: between half and all of base·2^(attempt-1)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return timedelta(seconds=ceiling * (0.5 + random.random() / 2))


async def record(
    session: AsyncSession, claim: Claim, outcome: Outcome, policy: RetryPolicy
) -> DeliveryState | None:
    """Store the attempt and move the delivery on: done, due again later, or failed. A webhook
    whose attempts keep failing is disabled. Returns the delivery's state after the attempt
    (None when the delivery is gone or another worker had taken it over)."""
    delivery = await session.get(WebhookDelivery, claim.delivery_id, with_for_update=True)
    if delivery is None:  # its webhook was deleted meanwhile
        return None
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            number=claim.attempt,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            response_excerpt=outcome.response_excerpt,
            error=outcome.error,
            succeeded=outcome.succeeded,
        )
    )
    if delivery.lease_id != claim.lease_id:
        return None  # the lease lapsed and another worker took the delivery over
    now = utcnow()
    delivery.attempts_count = claim.attempt
    delivery.lease_id = None
    delivery.leased_until = None
    webhook = await session.get(Webhook, claim.webhook_id)
    assert webhook is not None  # deleting a webhook deletes its deliveries
    if outcome.succeeded:
        delivery.state = DeliveryState.SUCCEEDED
        delivery.finished_at = now
        delivery.next_attempt_at = None
        webhook.consecutive_failures = 0
        return DeliveryState.SUCCEEDED
    if outcome.retriable and claim.attempt < policy.max_attempts:
        delivery.next_attempt_at = now + policy.delay(claim.attempt)
    else:
        delivery.state = DeliveryState.FAILED
        delivery.finished_at = now
        delivery.next_attempt_at = None
    webhook.consecutive_failures += 1
    limit = policy.disable_after_failures
    if limit and webhook.enabled and webhook.consecutive_failures >= limit:
        disable(
            webhook,
            f"Disabled after {webhook.consecutive_failures} consecutive failed attempts "
            f"(the last: {outcome.describe()}); enable it to resume its pending deliveries",
        )
    return DeliveryState(delivery.state)


@dataclass(frozen=True)
class Backlog:
    """Deliveries not yet sent (or still being retried), and when the oldest was queued."""

    pending: int
    oldest_created_at: datetime | None


async def backlog(session: AsyncSession) -> Backlog:
    """For the metrics: one aggregate over the pending deliveries (`ix_webhook_deliveries_due`)."""
    pending, oldest = (
        await session.execute(
            select(func.count(), func.min(WebhookDelivery.created_at)).where(
                WebhookDelivery.state == DeliveryState.PENDING
            )
        )
    ).one()
    return Backlog(pending, oldest)


async def forget_finished_before(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` finished deliveries (and their attempts) that finished before
    `cutoff` (retention of the delivery history); pending ones are never touched."""
    ids = list(
        await session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.state != DeliveryState.PENDING,
                WebhookDelivery.finished_at < cutoff,
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
    )
    if ids:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return len(ids)
