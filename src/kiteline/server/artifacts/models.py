"""Tables of the artifacts domain: files jobs uploaded, their hashes and where the bytes are."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_build_path", "build_id", "path"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    batch_id: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    glob_path: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha1sum: Mapped[str | None] = mapped_column(String(40))
    sha256sum: Mapped[str | None] = mapped_column(String(64))
    #: The MD5 (hex) the agent declared, Kiteline's own agent only: with S3, the upload form
    #: makes S3 check the bytes against it, and the server compares it with the ETag.
    md5sum: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(20), default="new")
    upload_destination: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
