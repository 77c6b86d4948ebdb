"""Tables of the agents domain: registered agents and their connection state."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, Uuid, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.agents.states import ConnectionState
from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    agent_token_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agent_tokens.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200))
    hostname: Mapped[str | None] = mapped_column(String(200))
    os: Mapped[str | None] = mapped_column(Text)
    arch: Mapped[str | None] = mapped_column(String(40))
    version: Mapped[str | None] = mapped_column(String(40))
    build_number: Mapped[str | None] = mapped_column(String(40))
    pid: Mapped[int | None] = mapped_column(Integer)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    meta_data: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[int | None] = mapped_column(Integer)
    ignore_in_dispatches: Mapped[bool] = mapped_column(Boolean, default=False)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    connection_state: Mapped[str] = mapped_column(
        String(20), default=ConnectionState.NEVER_CONNECTED
    )
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_job_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every UPDATE of the row (as builds.revision): what says a GraphQL answer
    # showing it is still current (graphql/answers.py).
    revision: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", onupdate=literal_column("revision") + 1
    )


class ServingProcess(Base):
    """A process serving the agent API (`kiteline server`, `up`, `run`) and its signs of life:
    agents can only be heard from while one serves, so the lost-agent sweep counts their
    silence from the latest (re)start of a serving process (see `agents.availability`)."""

    __tablename__ = "serving_processes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    #: Start of its current uninterrupted stretch of serving: its start, or its recovery from a
    #: stretch without signs of life (a stalled loop, an unreachable database).
    serving_since: Mapped[datetime] = mapped_column(UTCDateTime)
    alive_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
