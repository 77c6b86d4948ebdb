"""The validated shape of a pipeline: the pipeline itself and one model per step type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

ExitStatus: TypeAlias = int | Literal["*"]
# False: failures fail the build; True: any failure is soft; a list: only these exit statuses.
SoftFail: TypeAlias = bool | list[ExitStatus]
# False: run; True: skip; a string: skip, with this reason shown.
Skip: TypeAlias = bool | str
Plugin: TypeAlias = dict[str, object]

# The dimension name a single-list matrix (`matrix: [a, b]`, `{{matrix}}`) is stored under.
ANONYMOUS_DIMENSION = ""


@dataclass(frozen=True, kw_only=True)
class Dependency:
    key: str
    allow_failure: bool = False


@dataclass(frozen=True, kw_only=True)
class StepBase:
    """What every step type has."""

    key: str | None = None
    label: str | None = None
    if_: str | None = None
    branches: list[str] = field(default_factory=list)
    # None: not given (implicit dependencies apply); []: explicitly none at all.
    depends_on: list[Dependency] | None = None
    allow_dependency_failure: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AutomaticRetryRule:
    exit_status: Literal["*"] | list[int] = "*"
    signal: str | None = None  # None matches any signal
    signal_reason: str | None = None  # None matches any reason
    limit: int = 2


@dataclass(frozen=True, kw_only=True)
class ManualRetry:
    allowed: bool = True
    permit_on_passed: bool = False
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Retry:
    automatic: list[AutomaticRetryRule] = field(default_factory=list)
    manual: ManualRetry = field(default_factory=ManualRetry)


@dataclass(frozen=True, kw_only=True)
class MatrixAdjustment:
    with_: dict[str, str]
    skip: Skip | None = None
    soft_fail: SoftFail | None = None


@dataclass(frozen=True, kw_only=True)
class Matrix:
    """Dimensions in order, values as strings. A single list is one dimension named ``""``."""

    setup: dict[str, list[str]]
    adjustments: list[MatrixAdjustment] = field(default_factory=list)

    @property
    def is_single(self) -> bool:
        return list(self.setup) == [ANONYMOUS_DIMENSION]


@dataclass(frozen=True, kw_only=True)
class CommandStep(StepBase):
    command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    artifact_paths: list[str] = field(default_factory=list)
    parallelism: int | None = None
    matrix: Matrix | None = None
    retry: Retry = field(default_factory=Retry)
    soft_fail: SoftFail = False
    timeout_in_minutes: int | None = None
    skip: Skip = False
    concurrency: int | None = None
    concurrency_group: str | None = None
    concurrency_method: Literal["ordered", "eager"] = "ordered"
    priority: int | None = None
    cancel_on_build_failing: bool = False
    plugins: list[Plugin] = field(default_factory=list)
    notify: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str] | dict[str, str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class WaitStep(StepBase):
    continue_on_failure: bool = False


@dataclass(frozen=True, kw_only=True)
class TextField:
    key: str
    text: str | None = None
    hint: str | None = None
    format: str | None = None
    required: bool = True
    default: str | None = None


@dataclass(frozen=True, kw_only=True)
class SelectOption:
    label: str
    value: str
    hint: str | None = None
    required: bool = True


@dataclass(frozen=True, kw_only=True)
class SelectField:
    key: str
    options: list[SelectOption]
    select: str | None = None
    hint: str | None = None
    default: str | list[str] | None = None
    multiple: bool = False
    required: bool = True


Field: TypeAlias = TextField | SelectField


@dataclass(frozen=True, kw_only=True)
class BlockStep(StepBase):
    """A `block` (implicit barrier, like wait) or an `input` (no implicit dependencies)."""

    kind: Literal["block", "input"] = "block"
    prompt: str | None = None
    fields: list[Field] = field(default_factory=list)
    blocked_state: Literal["passed", "failed", "running"] = "passed"
    allowed_teams: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class TriggerBuild:
    branch: str | None = None
    commit: str = "HEAD"
    message: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    meta_data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TriggerStep(StepBase):
    trigger: str
    build: TriggerBuild = field(default_factory=TriggerBuild)
    async_: bool = False
    soft_fail: SoftFail = False
    skip: Skip = False


@dataclass(frozen=True, kw_only=True)
class GroupStep(StepBase):
    """`group` is the group's label (also in `label`); `steps` never contains a group."""

    group: str | None = None
    steps: list[Step] = field(default_factory=list)
    notify: list[dict[str, Any]] = field(default_factory=list)
    skip: Skip = False


Step: TypeAlias = CommandStep | WaitStep | BlockStep | TriggerStep | GroupStep


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    steps: list[Step] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    notify: list[dict[str, Any]] = field(default_factory=list)
    priority: int | None = None
    secrets: list[str] | dict[str, str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def step_count(self) -> int:
        """Its steps, a group's steps and the group itself each counted (as Buildkite's
        limits count them)."""
        return sum(
            1 + (len(step.steps) if isinstance(step, GroupStep) else 0) for step in self.steps
        )
