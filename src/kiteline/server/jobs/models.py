"""Tables of the jobs domain: one row per job attempt of a build's step."""

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
    Uuid,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column

from kiteline.server.jobs.definition import StepDefinition, StepDefinitionJSON
from kiteline.server.kit.db import Base, UTCDateTime, new_id, utcnow


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_build_position", "build_id", "position"),
        Index("ix_jobs_agent_state", "agent_id", "state"),
        Index("ix_jobs_pipeline_state", "pipeline_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"))
    # Every attempt of one step shares its step_id; dependencies point at steps, not attempts.
    step_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    step_key: Mapped[str | None] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(20))
    label: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    agent_query_rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    depends_on: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    allow_dependency_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    continue_on_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Type-specific configuration: soft_fail, retry rules, concurrency for command jobs;
    # prompt, fields, blocked_state for block/input jobs; trigger target and build for triggers.
    definition: Mapped[StepDefinition] = mapped_column(StepDefinitionJSON, default=StepDefinition)
    group_key: Mapped[str | None] = mapped_column(String(100))
    concurrency_group: Mapped[str | None] = mapped_column(String(200))
    concurrency: Mapped[int | None] = mapped_column(Integer)
    artifact_paths: Mapped[str | None] = mapped_column(Text)
    timeout_in_minutes: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    exit_status: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[str | None] = mapped_column(String(40))
    signal_reason: Mapped[str | None] = mapped_column(String(40))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    soft_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="SET NULL")
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    retried: Mapped[bool] = mapped_column(Boolean, default=False)
    retried_in_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    retries_count: Mapped[int] = mapped_column(Integer, default=0)
    retry_type: Mapped[str | None] = mapped_column(String(20))
    retry_source_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    unblocked_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    unblocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    triggered_build_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chunks_failed_count: Mapped[int] = mapped_column(Integer, default=0)
    log_size: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runnable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every UPDATE of the row, ORM flush or Core `update()` alike: what says a
    # rendered job is still current (see builds/rendering.py). Read it with a query: after a
    # flush the loaded attribute is expired.
    revision: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", onupdate=literal_column("revision") + 1
    )


# In the dispatch queue's order (`jobs.claims._QUEUE`): a ping reads its first candidates from
# the index instead of sorting every runnable job of the organization (decision 0046).
Index(
    "ix_jobs_dispatch",
    Job.organization_id,
    Job.state,
    Job.priority.desc(),
    Job.runnable_at,
    Job.position,
    Job.id,
)
