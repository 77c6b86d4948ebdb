"""A job as a build's planner makes it, before it is a row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kiteline.server.jobs.definition import StepDefinition
from kiteline.server.jobs.states import JobState, JobType


@dataclass
class PlannedJob:
    step_id: uuid.UUID
    type: JobType
    state: JobState
    label: str | None = None
    step_key: str | None = None
    group_key: str | None = None
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    agent_query_rules: list[str] = field(default_factory=list)
    depends_on: list[dict[str, Any]] = field(default_factory=list)
    allow_dependency_failure: bool = False
    continue_on_failure: bool = False
    artifact_paths: str | None = None
    timeout_in_minutes: int | None = None
    priority: int = 0
    concurrency: int | None = None
    concurrency_group: str | None = None
    definition: StepDefinition = field(default_factory=StepDefinition)
    step: dict[str, Any] = field(default_factory=dict)
