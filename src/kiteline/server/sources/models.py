"""Tables of the sources domain: what code hosts delivered, and the commit statuses queued
for them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, utcnow

# BigInteger on PostgreSQL; SQLite only autoincrements an INTEGER primary key.
SEQUENCE = BigInteger().with_variant(Integer, "sqlite")


class SourceDelivery(Base):
    """One request a code host sent to a pipeline's webhook URL, and what came of it."""

    __tablename__ = "source_deliveries"
    __table_args__ = (Index("ix_source_deliveries_pipeline", "pipeline_id", "id"),)

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(100))
    # The host's own id of the delivery (X-GitHub-Delivery, …), when it sends one.
    delivery_id: Mapped[str | None] = mapped_column(String(200))
    # Set on the one delivery of an id that may start a build: a repeat finds it taken.
    claim: Mapped[str | None] = mapped_column(String(300), unique=True)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    status_code: Mapped[int] = mapped_column(Integer)
    build_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CommitStatus(Base):
    """A build state to post to the code host, queued in the transaction that fanned its event
    out; sent in order per build, retried like webhook deliveries."""

    __tablename__ = "commit_statuses"
    __table_args__ = (
        Index("ix_commit_statuses_build", "build_id", "id"),
        Index("ix_commit_statuses_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # what the host is told: pending, success…
    state: Mapped[str] = mapped_column(String(20), default="pending")  # of the sending
    attempts_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
