"""Tables of the builds domain: builds and their meta-data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class Build(Base):
    __tablename__ = "builds"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "number"),
        Index("ix_builds_org_created", "organization_id", "created_at"),
        Index("ix_builds_pipeline_state", "pipeline_id", "state"),
        Index("ix_builds_pipeline_created", "pipeline_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text)
    commit: Mapped[str] = mapped_column(String(200))
    branch: Mapped[str] = mapped_column(String(400))
    tag: Mapped[str | None] = mapped_column(String(400))
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(20), default="api")
    author: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pull_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    clean_checkout: Mapped[bool] = mapped_column(Boolean, default=False)
    creator_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    rebuilt_from_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    blocked_state: Mapped[str | None] = mapped_column(String(20))
    triggered_from_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    pipeline_configuration: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every UPDATE of the row, ORM flush or Core `update()` alike (and by a change
    # of the build's meta-data): with its jobs' revisions, what says a rendered build is
    # still current (see builds/rendering.py). Read it with a query: after a flush the
    # loaded attribute is expired.
    revision: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", onupdate=literal_column("revision") + 1
    )


class BuildMetaData(Base):
    __tablename__ = "build_meta_data"

    build_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
