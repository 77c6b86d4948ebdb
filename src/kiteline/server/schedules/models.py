"""Tables of the schedules domain."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class PipelineSchedule(Base):
    """A build of a pipeline on a cron timetable. `next_build_at` is the due time a worker
    claims (moving it on) in the same transaction that creates the build."""

    __tablename__ = "pipeline_schedules"
    __table_args__ = (Index("ix_pipeline_schedules_due", "enabled", "next_build_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200), default="")
    cronline: Mapped[str] = mapped_column(String(200))
    branch: Mapped[str | None] = mapped_column(String(400))
    commit: Mapped[str] = mapped_column(String(200), default="HEAD")
    message: Mapped[str | None] = mapped_column(Text)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_build_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_message: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
