"""Turns a parsed pipeline into the jobs of a build: one node of the step graph at a time."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from kiteline.pipeline import (
    CommandStep,
    ConditionContext,
    PipelineError,
    WaitStep,
    agent_query_rules,
    branch_matches,
    build_step_graph,
    evaluate_condition,
    expand_command_step,
)
from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.errors import ValidationFailed


@dataclass
class PlannedJob:
    step_id: uuid.UUID
    type: JobType
    state: JobState
    label: str | None = None
    step_key: str | None = None
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    agent_query_rules: list[str] = field(default_factory=list)
    depends_on: list[dict[str, Any]] = field(default_factory=list)
    allow_dependency_failure: bool = False
    continue_on_failure: bool = False
    artifact_paths: str | None = None
    timeout_in_minutes: int | None = None
    priority: int = 0
    step: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    """What `if` conditions and branch filters look at."""

    branch: str
    commit: str
    message: str
    number: int
    build_id: uuid.UUID
    source: str
    env: dict[str, str]
    pipeline_slug: str
    pipeline_id: uuid.UUID
    pipeline_repository: str
    pipeline_default_branch: str
    organization_slug: str
    organization_id: uuid.UUID
    tag: str | None = None

    def condition_context(self) -> ConditionContext:
        return ConditionContext(
            variables={
                "build.branch": self.branch,
                "build.commit": self.commit,
                "build.message": self.message,
                "build.number": self.number,
                "build.id": str(self.build_id),
                "build.source": self.source,
                "build.tag": self.tag,
                "pipeline.slug": self.pipeline_slug,
                "pipeline.id": str(self.pipeline_id),
                "pipeline.repository": self.pipeline_repository,
                "pipeline.default_branch": self.pipeline_default_branch,
                "organization.slug": self.organization_slug,
                "organization.id": str(self.organization_id),
            },
            env=self.env,
        )


def plan(definition: PipelineDefinition, context: BuildContext) -> list[PlannedJob]:
    """The build's jobs in step order; every job starts `waiting` until the build advances."""
    try:
        nodes = build_step_graph(definition.steps)
    except PipelineError as error:
        raise ValidationFailed.field("configuration", str(error)) from error
    step_ids = [uuid.uuid4() for _ in nodes]
    planned: list[PlannedJob] = []
    for node in nodes:
        step = node.step
        depends_on = [
            {"step_id": str(step_ids[edge.index]), "allow_failure": edge.allow_failure}
            for edge in node.depends_on
        ]
        common: dict[str, Any] = {
            "step_id": step_ids[node.index],
            "step_key": step.key,
            "depends_on": depends_on,
            "allow_dependency_failure": step.allow_dependency_failure,
        }
        if isinstance(step, CommandStep):
            planned.extend(_command_jobs(step, definition, context, common))
        elif isinstance(step, WaitStep):
            planned.append(
                PlannedJob(
                    type=JobType.WAITER,
                    state=_initial_state(step.if_, step.branches, context),
                    label=step.label,
                    continue_on_failure=step.continue_on_failure,
                    step=dict(step.raw) if isinstance(step.raw, dict) else {},
                    **common,
                )
            )
        else:
            kind = type(step).__name__.removesuffix("Step").lower()
            raise ValidationFailed.field(
                "configuration", f"{kind} steps are not supported by this server yet"
            )
    return planned


def _initial_state(condition: str | None, branches: list[str], context: BuildContext) -> JobState:
    if branches and not branch_matches(branches, context.branch):
        return JobState.BROKEN
    if condition is not None:
        try:
            if not evaluate_condition(condition, context.condition_context()):
                return JobState.BROKEN
        except PipelineError as error:
            raise ValidationFailed.field("configuration", str(error)) from error
    return JobState.WAITING


def _command_jobs(
    step: CommandStep,
    definition: PipelineDefinition,
    context: BuildContext,
    common: dict[str, Any],
) -> list[PlannedJob]:
    state = _initial_state(step.if_, step.branches, context)
    if step.skip:
        state = JobState.SKIPPED
    jobs = []
    for spec in expand_command_step(step):
        env = {**definition.env, **spec.env}
        if spec.parallel_job is not None and spec.parallel_job_count is not None:
            env["BUILDKITE_PARALLEL_JOB"] = str(spec.parallel_job)
            env["BUILDKITE_PARALLEL_JOB_COUNT"] = str(spec.parallel_job_count)
        if spec.plugins:
            env["BUILDKITE_PLUGINS"] = json.dumps(spec.plugins)
        agents = {**definition.agents, **spec.agents}
        jobs.append(
            PlannedJob(
                type=JobType.SCRIPT,
                state=JobState.SKIPPED if spec.skip else state,
                label=spec.label,
                command=spec.command,
                env=env,
                agent_query_rules=agent_query_rules(agents),
                artifact_paths=";".join(step.artifact_paths) or None,
                timeout_in_minutes=step.timeout_in_minutes,
                priority=step.priority if step.priority is not None else definition.priority or 0,
                step=dict(step.raw) if isinstance(step.raw, dict) else {},
                **common,
            )
        )
    return jobs
