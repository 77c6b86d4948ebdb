"""Tables of the webhooks domain: webhooks, their deliveries and attempts, and the fan-out
bookkeeping that turns outbox events into deliveries exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow

# BigInteger on PostgreSQL; SQLite only autoincrements an INTEGER primary key.
SEQUENCE = BigInteger().with_variant(Integer, "sqlite")


class Webhook(Base):
    """A `webhook` notification service of an organization."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text)
    # Kept in clear: signing needs it, and Buildkite shows it back to admins.
    token: Mapped[str] = mapped_column(String(200))
    token_mode: Mapped[str] = mapped_column(String(20))
    events: Mapped[list[str] | None] = mapped_column(JSON)  # None: every event
    scope: Mapped[str] = mapped_column(String(20), default="all")
    pipeline_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    branch_configuration: Mapped[str] = mapped_column(Text, default="")
    build_states: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    tls_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event (or ping) for one webhook; its `id` orders the webhook's queue and its
    `request_id` is the `X-Buildkite-Request` every attempt sends."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_queue", "webhook_id", "state", "id"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=new_id)
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(60))
    event_id: Mapped[int | None] = mapped_column(BigInteger)  # the outbox row; None for ping
    redelivery_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The exact body sent, so retries and redeliveries carry the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A worker sending it holds a lease; one that dies mid-request lets it lapse.
    lease_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class WebhookFanoutFloor(Base):
    """Every outbox event with an id at or below `event_id` has been fanned out (or can no
    longer appear); above it, `WebhookFanout` rows name the ones done."""

    __tablename__ = "webhook_fanout_floor"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookFanout(Base):
    __tablename__ = "webhook_fanouts"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
