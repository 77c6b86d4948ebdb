"""A job's step definition: what its step says beyond the job's own columns, typed, and stored
as the JSON object it always was (`jobs.definition`).

One model for every job type, each using its own fields: a command job its retry, soft-fail,
matrix and parallelism settings; a block or input job its prompt, fields and blocked state; a
trigger job its target pipeline and build. Only the fields a job was given are written, with
their JSON names (`async`), so rows written before this type load unchanged and new rows look
as they did; keys this model does not know are kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class _Stored(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    def stored(self) -> dict[str, Any]:
        """As the JSON object stored: the fields it was given, by their JSON names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class AutomaticRetry(_Stored):
    """A `retry.automatic` rule: `exit_status` `"*"` (1-255), a status or a list of them."""

    exit_status: Any = "*"
    signal: str | None = None
    signal_reason: str | None = None
    limit: int = 2


class ManualRetry(_Stored):
    allowed: bool = True
    permit_on_passed: bool = False
    reason: str | None = None


class GroupShown(_Stored):
    """The group step a job's step belongs to (a group is no job)."""

    id: str
    label: str | None = None
    key: str | None = None


class StepDefinition(_Stored):
    # Command jobs.
    soft_fail: Any = None
    automatic_retry: list[AutomaticRetry] = Field(default_factory=list)
    manual_retry: ManualRetry | None = None
    cancel_on_build_failing: bool = False
    matrix: dict[str, Any] | None = None
    parallel_job: int | None = None
    parallel_job_count: int | None = None
    # Block and input jobs.
    kind: str | None = None
    prompt: str | None = None
    fields: list[dict[str, Any]] = Field(default_factory=list)
    blocked_state: str | None = None
    # Trigger jobs.
    trigger: str | None = None
    build: dict[str, Any] = Field(default_factory=dict)
    async_: bool = Field(default=False, alias="async")
    error: str | None = None  # why its build could not be created
    # Any job of a group step.
    group: GroupShown | None = None

    def with_changes(self, **changes: Any) -> StepDefinition:
        """A copy with `changes` (by field name) set, as stored fields."""
        stored = self.stored()
        for name, value in changes.items():
            key = type(self).model_fields[name].alias or name
            stored[key] = value.stored() if isinstance(value, _Stored) else value
        return StepDefinition.model_validate(stored)


_EMPTY = StepDefinition()


class StepDefinitionJSON(TypeDecorator[StepDefinition]):
    """The `jobs.definition` column: a JSON object in the database, a `StepDefinition` here."""

    impl = JSON
    cache_ok = True

    def process_bind_param(
        self, value: StepDefinition | dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, StepDefinition):
            return value.stored()
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> StepDefinition:
        if not value:
            return _EMPTY
        return StepDefinition.model_validate(value)
