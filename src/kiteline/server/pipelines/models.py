"""Tables of the pipelines domain."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow

#: Random bytes in a pipeline's badge key: its badge is served without sign-in to whoever knows
#: the URL, so the URL must not be guessable (50 hex characters, as Buildkite's badge keys).
BADGE_KEY_BYTES = 25


def new_badge_key() -> str:
    return secrets.token_hex(BADGE_KEY_BYTES)


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("organization_id", "slug"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    repository: Mapped[str] = mapped_column(Text, default="")
    default_branch: Mapped[str] = mapped_column(String(200), default="main")
    branch_configuration: Mapped[str | None] = mapped_column(Text)
    configuration: Mapped[str] = mapped_column(Text, default="")
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    visibility: Mapped[str] = mapped_column(String(20), default="private")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The secret in the pipeline's `webhook_url` (`/deliver/<token>`), where its code host
    # sends pushes and pull requests.
    webhook_token: Mapped[str | None] = mapped_column(
        String(64), unique=True, default=lambda: secrets.token_hex(24)
    )
    # Build numbers come from this counter with an atomic UPDATE ... RETURNING, so concurrent
    # creators on PostgreSQL serialise on the pipeline row and never reuse a number.
    last_build_number: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Names the pipeline's badge (`/badges/<key>.svg`). Every row has one (new rows by this
    # default, older ones filled by migration 0010); nullable in the schema only because SQLite
    # cannot add a NOT NULL column without rebuilding the table, whose DROP would cascade.
    badge_key: Mapped[str] = mapped_column(
        String(64), nullable=True, unique=True, index=True, default=new_badge_key
    )
    # Bumped by every UPDATE of the row (as builds.revision): what says a GraphQL answer
    # showing it is still current (graphql/answers.py).
    revision: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", onupdate=literal_column("revision") + 1
    )
