"""Tables of the annotations domain: Markdown notes attached to builds (or to one job)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_build_context", "build_id", "scope", "context"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(String(10), default="build")
    context: Mapped[str] = mapped_column(String(200))
    style: Mapped[str] = mapped_column(String(20), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=3)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
