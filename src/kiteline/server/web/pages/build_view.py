"""What the build page shows, worked out from the build's rows: its header, its jobs as rows in
step order (groups, matrix and parallel steps with their jobs under them, retried attempts),
the waterfall's bars, annotations by context, artifacts. Pure: the page reads the rows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from kiteline.server.annotations.service import ShownAnnotation
from kiteline.server.artifacts.service import ShownArtifact
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.builds.repository import Build
from kiteline.server.builds.states import FINISHED, BuildState
from kiteline.server.jobs.service import Job, JobSummary
from kiteline.server.jobs.shapes import rest_state
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.web.pages.formatting import SOURCES, commit_url, duration_text, size_text

#: A job as the page reads it (JobSummary), or loaded whole (tests, actions).
AnyJob = Job | JobSummary

#: The favicon (static/build-favicon-<name>.svg) of each build state.
FAVICONS = {
    BuildState.PASSED: "passed",
    BuildState.FAILED: "failed",
    BuildState.FAILING: "failed",
    BuildState.RUNNING: "running",
    BuildState.CANCELING: "running",
    BuildState.SCHEDULED: "scheduled",
    BuildState.CREATING: "scheduled",
    BuildState.BLOCKED: "blocked",
    BuildState.CANCELED: "canceled",
    BuildState.SKIPPED: "canceled",
    BuildState.NOT_RUN: "canceled",
}

#: Job states in which "Cancel Job" is offered: waiting for or held by an agent.
CANCELABLE_JOB_STATES = frozenset(
    {
        JobState.SCHEDULED,
        JobState.ASSIGNED,
        JobState.ACCEPTED,
        JobState.RUNNING,
        JobState.LIMITING,
        JobState.LIMITED,
    }
)
CANCELABLE_BUILD_STATES = frozenset(
    {BuildState.SCHEDULED, BuildState.RUNNING, BuildState.FAILING, BuildState.BLOCKED}
)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


class Named(Protocol):
    """An agent or a user as the page names them (a light row, or a whole one)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class BuildLink:
    """Another build the page links to (a trigger's child, a parent, a rebuild's original)."""

    build_id: uuid.UUID
    pipeline_slug: str
    pipeline_name: str
    number: int
    state: str
    job_id: uuid.UUID | None = None  # the parent's trigger job, to scroll to

    def path(self, org: str) -> str:
        anchor = f"#{self.job_id}" if self.job_id else ""
        return f"/{org}/{self.pipeline_slug}/builds/{self.number}{anchor}"


@dataclass(frozen=True)
class BlockField:
    """One field of a block step's dialog, with the value to show and its errors."""

    key: str
    kind: Literal["text", "select"]
    label: str
    hint: str | None
    required: bool
    multiple: bool
    options: list[dict[str, Any]]
    value: list[str]
    errors: list[str]

    @property
    def dom_id(self) -> str:
        return "field-" + re.sub(r"[^\w-]", "_", self.key)


@dataclass(frozen=True)
class UnblockForm:
    """A block step's dialog as last submitted: the values given and what was wrong."""

    job_id: uuid.UUID
    values: dict[str, list[str]]
    field_errors: dict[str, list[str]]
    message: str | None


@dataclass
class JobRow:
    """A job as its row shows it, with what the page may offer on it."""

    job: AnyJob
    kind: Literal["command", "wait", "block", "trigger"]
    state: str  # as REST shows it: passed/failed for a finished job
    label: str
    depth: int
    values: str | None = None  # matrix values or `3/5` of a parallel step
    agent: Named | None = None
    unblocker: Named | None = None
    triggered: BuildLink | None = None
    retry_allowed: bool = False
    cancelable: bool = False
    unblockable: bool = False
    fields: list[BlockField] = field(default_factory=list)
    attempt: int = 1
    waited: str = ""
    ran: str = ""

    id: str = field(init=False, default="")  # the job's id as text (the row's element id)

    def __post_init__(self) -> None:
        self.id = str(self.job.id)

    @property
    def row_type(self) -> str:
        return "job"

    def cache_key(self, base: str, org: str) -> tuple[Any, ...]:
        """Everything the row's HTML is made of: rows with equal keys render alike (a job's
        columns all bump its `revision`)."""
        agent = (self.agent.id, self.agent.name) if self.agent else None
        triggered = self.triggered
        return (
            self.job.id,
            self.job.revision,
            self.state,
            self.label,
            self.depth,
            self.values,
            agent,
            self.unblocker.name if self.unblocker else None,
            (triggered.pipeline_slug, triggered.pipeline_name, triggered.number, triggered.state)
            if triggered
            else None,
            self.retry_allowed,
            self.cancelable,
            self.unblockable,
            self.attempt,
            self.waited,
            self.ran,
            base,
            org,
        )


@dataclass
class HeadingRow:
    """A group, or a matrix or parallel step: its jobs follow, one level deeper."""

    id: str
    label: str
    depth: int
    kind: Literal["group", "step"]
    count: int
    states: dict[str, int]

    @property
    def row_type(self) -> str:
        return "heading"


Row = JobRow | HeadingRow


@dataclass(frozen=True)
class Bar:
    """A job's lane in the waterfall: when it could run, started and finished (seconds from
    the axis's start; None: not yet)."""

    job_id: str
    label: str
    state: str
    runnable: float | None
    started: float | None
    finished: float | None


@dataclass(frozen=True)
class Waterfall:
    start: datetime | None
    end: datetime | None  # None while the build runs: the axis ends now
    span: float  # seconds the axis covers at rendering
    bars: list[Bar]

    def position(self, seconds: float | None) -> float:
        """A moment as a point on the 0 to 1000 axis of the lanes' SVGs."""
        if seconds is None or self.span <= 0:
            return 0.0
        return round(min(max(seconds / self.span, 0.0), 1.0) * 1000, 2)

    def ticks(self) -> list[str]:
        return [duration_text(self.span * quarter / 4) for quarter in range(5)]


@dataclass(frozen=True)
class AnnotationGroup:
    context: str
    style: str
    annotations: list[ShownAnnotation]


@dataclass(frozen=True)
class ArtifactRow:
    artifact: ShownArtifact
    job_label: str
    size: str

    @property
    def downloadable(self) -> bool:
        return self.artifact.state == "finished"


@dataclass
class BuildPage:
    build: Build
    pipeline: Pipeline
    creator: Named | None
    source: str
    commit_url: str | None
    duration: str
    favicon: str
    state_label: str
    cancelable: bool
    rebuildable: bool
    parent: BuildLink | None
    rebuilt_from: BuildLink | None
    rows: list[Row]
    waterfall: Waterfall
    annotations: list[AnnotationGroup]
    artifacts: list[ArtifactRow]
    meta_data: dict[str, str]
    blocked_jobs: list[JobRow]


_KINDS: dict[str, Literal["command", "wait", "block", "trigger"]] = {
    JobType.SCRIPT.value: "command",
    JobType.WAITER.value: "wait",
    JobType.MANUAL.value: "block",
    JobType.TRIGGER.value: "trigger",
}


def _step_label(job: AnyJob) -> str:
    step = job.step or {}
    label = step.get("label") or step.get("name") or step.get("key")
    if label:
        return str(label)
    command = step.get("command") or step.get("commands") or job.command or ""
    if isinstance(command, list):
        command = command[0] if command else ""
    return str(command).splitlines()[0] if str(command).strip() else "Command"


def _job_label(job: AnyJob) -> str:
    if job.label:
        return job.label
    if job.type == JobType.WAITER:
        return "Wait"
    if job.type == JobType.TRIGGER:
        return f"Trigger {job.definition.trigger or ''}".strip()
    return _step_label(job)


def _values(job: AnyJob) -> str | None:
    definition = job.definition
    matrix = definition.matrix
    if isinstance(matrix, dict) and matrix:
        return " ".join(f"{key}={value}" if key else str(value) for key, value in matrix.items())
    if isinstance(matrix, str | int | float) and str(matrix):
        return str(matrix)
    index, total = definition.parallel_job, definition.parallel_job_count
    if index is not None and total:
        return f"{int(index) + 1}/{total}"
    return None


def _is_fanned_out(job: AnyJob) -> bool:
    """A matrix or parallel step's job: shown under a heading for its step."""
    definition = job.definition
    return bool(definition.matrix) or bool(definition.parallel_job_count)


def _group_of(job: AnyJob) -> tuple[str, str] | None:
    """The group a job is in, as (id, label): recorded by the planner, or only its key for
    builds planned before it recorded groups."""
    group = job.definition.group
    if group is not None and group.id:
        return group.id, group.label or group.key or "Group"
    if job.group_key:
        return f"key-{job.group_key}", job.group_key
    return None


def block_fields(job: AnyJob, form: UnblockForm | None) -> list[BlockField]:
    """A block step's fields, filled with what was submitted (else their defaults)."""
    submitted = form if form is not None and form.job_id == job.id else None
    fields = []
    for spec in job.definition.fields:
        key = str(spec["key"])
        kind: Literal["text", "select"] = "select" if spec.get("type") == "select" else "text"
        if submitted is not None:
            value = submitted.values.get(key, [])
        else:
            default = spec.get("default")
            if default is None:
                value = []
            elif isinstance(default, list):
                value = [str(item) for item in default]
            else:
                value = str(default).split("\n") if kind == "select" else [str(default)]
        fields.append(
            BlockField(
                key=key,
                kind=kind,
                label=str(spec.get("select") or spec.get("text") or key),
                hint=spec.get("hint"),
                required=bool(spec.get("required", True)),
                multiple=bool(spec.get("multiple")),
                options=list(spec.get("options", [])),
                value=value,
                errors=submitted.field_errors.get(key, []) if submitted else [],
            )
        )
    return fields


@dataclass(frozen=True)
class Related:
    """Rows beside the build's own that its page names."""

    agents: Mapping[uuid.UUID, Named]
    users: Mapping[uuid.UUID, Named]
    triggered: Mapping[uuid.UUID, BuildLink]  # by trigger job id
    parent: BuildLink | None
    rebuilt_from: BuildLink | None


def job_rows(
    build: Build, jobs: Sequence[AnyJob], related: Related, form: UnblockForm | None, now: datetime
) -> list[Row]:
    """The build's jobs in step order, with a heading before each group and each matrix or
    parallel step (their jobs one level deeper), retried attempts before their retry."""
    rows: list[Row] = []
    group_heading: HeadingRow | None = None
    step_heading: tuple[uuid.UUID, HeadingRow] | None = None
    for job in jobs:
        group = _group_of(job)
        if group is None:
            group_heading = None
        elif group_heading is None or group_heading.id != f"group-{group[0]}":
            group_heading = HeadingRow(f"group-{group[0]}", group[1], 0, "group", 0, {})
            rows.append(group_heading)
            step_heading = None
        depth = 1 if group_heading is not None else 0
        if not _is_fanned_out(job):
            step_heading = None
        elif step_heading is None or step_heading[0] != job.step_id:
            step_row = HeadingRow(f"step-{job.step_id}", _step_label(job), depth, "step", 0, {})
            step_heading = (job.step_id, step_row)
            rows.append(step_row)
        if step_heading is not None:
            depth += 1
        row = _job_row(build, job, related, form, depth, now)
        for counted in (group_heading, step_heading[1] if step_heading else None):
            if counted is not None and not job.retried:
                counted.count += 1
                counted.states[row.state] = counted.states.get(row.state, 0) + 1
        rows.append(row)
    return rows


def _job_row(
    build: Build,
    job: AnyJob,
    related: Related,
    form: UnblockForm | None,
    depth: int,
    now: datetime,
) -> JobRow:
    kind = _KINDS.get(job.type, "command")
    row = JobRow(
        job=job,
        kind=kind,
        state=rest_state(job),
        label=_job_label(job),
        depth=depth,
        values=_values(job),
        agent=related.agents.get(job.agent_id) if job.agent_id else None,
        unblocker=related.users.get(job.unblocked_by_id) if job.unblocked_by_id else None,
        triggered=related.triggered.get(job.id),
        attempt=job.retries_count + 1,
    )
    if kind == "command":
        row.retry_allowed = build_transitions.retry_refusal(build, job) is None
        row.cancelable = job.state in CANCELABLE_JOB_STATES
        if job.runnable_at is not None:
            # A job that ended without starting (canceled, expired) waited until it ended.
            waited_until = job.started_at or job.finished_at or now
            row.waited = duration_text(_seconds(job.runnable_at, waited_until))
        if job.started_at is not None:
            row.ran = duration_text(_seconds(job.started_at, job.finished_at or now))
    elif kind == "block":
        row.unblockable = job.state == JobState.BLOCKED and build.state not in (
            BuildState.CANCELED,
            BuildState.CANCELING,
        )
        if row.unblockable:
            row.fields = block_fields(job, form)
    elif kind == "trigger" and job.started_at is not None:
        row.ran = duration_text(_seconds(job.started_at, job.finished_at or now))
    return row


def waterfall(build: Build, jobs: Sequence[AnyJob], now: datetime) -> Waterfall:
    """Bars for the jobs that wait for and run on agents (and trigger steps), on one axis from
    the first job that could run to the last finish (or now, while the build runs)."""
    lanes = [
        job
        for job in jobs
        if job.type in (JobType.SCRIPT, JobType.TRIGGER)
        and (job.runnable_at is not None or job.started_at is not None)
    ]
    moments = [job.runnable_at or job.started_at for job in lanes]
    start = min((moment for moment in moments if moment is not None), default=None)
    running = build.finished_at is None
    ends = [job.finished_at for job in lanes if job.finished_at is not None]
    end = None if running else max(ends, default=build.finished_at)
    if start is None:
        return Waterfall(None, end, 0.0, [])
    span = _seconds(start, end or now) or 0.0

    def offset(moment: datetime | None) -> float | None:
        return _seconds(start, moment)

    def lane_label(job: AnyJob) -> str:
        values = _values(job)
        return _job_label(job) + (f" ({values})" if values else "")

    bars = [
        Bar(
            job_id=str(job.id),
            label=lane_label(job),
            state=rest_state(job),
            runnable=offset(job.runnable_at or job.started_at),
            started=offset(job.started_at),
            finished=offset(job.finished_at),
        )
        for job in lanes
    ]
    return Waterfall(start, end, max(span, 0.0), bars)


def annotation_groups(annotations: Sequence[ShownAnnotation]) -> list[AnnotationGroup]:
    """Annotations grouped by context, in the order of each context's first (highest priority,
    oldest) annotation; a group takes the style of its first."""
    groups: dict[str, AnnotationGroup] = {}
    for annotation in annotations:
        group = groups.get(annotation.context)
        if group is None:
            group = groups[annotation.context] = AnnotationGroup(
                annotation.context, annotation.style, []
            )
        group.annotations.append(annotation)
    return list(groups.values())


def _shows_blocked(build: Build) -> bool:
    return build.blocked and build.state not in (BuildState.FAILED, BuildState.CANCELED)


def favicon(build: Build) -> str:
    """The name of the build's favicon (static/build-favicon-<name>.svg)."""
    if _shows_blocked(build):
        return "blocked"
    return FAVICONS.get(BuildState(build.state), "scheduled")


def state_label(build: Build) -> str:
    """The build's state as its page's title and header say it."""
    if _shows_blocked(build):
        return "Blocked"
    return BuildState(build.state).value.replace("_", " ").capitalize()


def build_page(
    *,
    build: Build,
    pipeline: Pipeline,
    jobs: Sequence[AnyJob],
    related: Related,
    annotations: Sequence[ShownAnnotation],
    artifacts: Sequence[ShownArtifact],
    meta_data: dict[str, str],
    form: UnblockForm | None,
    now: datetime,
) -> BuildPage:
    rows = job_rows(build, jobs, related, form, now)
    labels = {job.id: _job_label(job) for job in jobs}
    state = BuildState(build.state)
    return BuildPage(
        build=build,
        pipeline=pipeline,
        creator=related.users.get(build.creator_id) if build.creator_id else None,
        source=SOURCES.get(build.source, build.source),
        commit_url=commit_url(pipeline.repository, build.commit),
        duration=duration_text(_seconds(build.started_at, build.finished_at or now)),
        favicon=favicon(build),
        state_label=state_label(build),
        cancelable=state in CANCELABLE_BUILD_STATES or build.blocked,
        rebuildable=(state in FINISHED or build.blocked)
        and pipeline.settings.get("allow_rebuilds") is not False,
        parent=related.parent,
        rebuilt_from=related.rebuilt_from,
        rows=rows,
        waterfall=waterfall(build, jobs, now),
        annotations=annotation_groups(annotations),
        artifacts=[
            ArtifactRow(a, labels.get(a.job_id, ""), size_text(a.file_size)) for a in artifacts
        ],
        meta_data=dict(sorted(meta_data.items())),
        blocked_jobs=[row for row in rows if isinstance(row, JobRow) and row.unblockable],
    )
