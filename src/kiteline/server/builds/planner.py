"""Turns a parsed pipeline into the jobs of a build, one node of the step graph at a time.

Command steps become `script` jobs (one per matrix combination or parallel copy), wait steps
`waiter` jobs, block and input steps `manual` jobs, trigger steps `trigger` jobs. A group is not
a job: depending on a group means depending on every step in it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

from kiteline.pipeline import (
    BlockStep,
    CommandStep,
    ConditionContext,
    GroupStep,
    PipelineError,
    SelectField,
    Step,
    TriggerStep,
    WaitStep,
    agent_query_rules,
    branch_matches,
    build_step_graph,
    evaluate_condition,
    expand_command_step,
)
from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.server.jobs.definition import AutomaticRetry, GroupShown, ManualRetry, StepDefinition
from kiteline.server.jobs.planned import PlannedJob
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.errors import ValidationFailed


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


def plan(
    definition: PipelineDefinition,
    context: BuildContext,
    *,
    external_keys: dict[str, list[uuid.UUID]] | None = None,
) -> list[PlannedJob]:
    """The jobs for `definition`'s steps, every one `waiting` until the build advances.

    `external_keys` maps step keys that already exist in the build (for a pipeline upload) to
    their step ids, so that uploaded steps may depend on them.
    """
    external = external_keys or {}
    steps, external_edges = _split_external_dependencies(definition.steps, external)
    try:
        nodes = build_step_graph(steps)
    except PipelineError as error:
        raise ValidationFailed.field("configuration", str(error)) from error
    step_ids = [uuid.uuid4() for _ in nodes]
    # A dependency on a group stands for its steps (and the steps of nothing else).
    targets = {
        node.index: (
            [step_ids[child] for child in node.children]
            if isinstance(node.step, GroupStep)
            else [step_ids[node.index]]
        )
        for node in nodes
    }
    planned: list[PlannedJob] = []
    for node in nodes:
        step = node.step
        if isinstance(step, GroupStep):
            continue
        group = nodes[node.group_index].step if node.group_index is not None else None
        depends_on = [
            {"step_id": str(target), "allow_failure": edge.allow_failure}
            for edge in node.depends_on
            for target in targets[edge.index]
        ]
        depends_on += [
            {"step_id": str(target), "allow_failure": allow_failure}
            for key, allow_failure in external_edges.get(id(step), [])
            for target in external[key]
        ]
        state = _initial_state(step, group, context)
        common: dict[str, Any] = {
            "step_id": step_ids[node.index],
            "step_key": step.key,
            "group_key": group.key if isinstance(group, GroupStep) else None,
            "depends_on": depends_on,
            "allow_dependency_failure": step.allow_dependency_failure,
            "step": dict(step.raw),
        }
        made: list[PlannedJob] = []
        if isinstance(step, CommandStep):
            made.extend(_command_jobs(step, definition, state, common))
        elif isinstance(step, WaitStep):
            made.append(
                PlannedJob(
                    type=JobType.WAITER,
                    state=state,
                    label=step.label,
                    continue_on_failure=step.continue_on_failure,
                    **common,
                )
            )
        elif isinstance(step, BlockStep):
            made.append(_block_job(step, state, common))
        elif isinstance(step, TriggerStep):
            made.append(_trigger_job(step, state, common))
        if isinstance(group, GroupStep) and node.group_index is not None:
            # A group is no job: its jobs carry it, so that a page can show them under it.
            shown = GroupShown(id=str(step_ids[node.group_index]), label=group.label, key=group.key)
            for item in made:
                item.definition = item.definition.with_changes(group=shown)
        planned.extend(made)
    return planned


def _split_external_dependencies(
    steps: list[Step], external: dict[str, list[uuid.UUID]]
) -> tuple[list[Step], dict[int, list[tuple[str, bool]]]]:
    """Take dependencies on keys outside these steps out of them (the graph would refuse them),
    remembering them per step so the plan can add them back as step ids."""
    if not external:
        return steps, {}
    own_keys = {s.key for s in _flatten(steps) if s.key}
    edges: dict[int, list[tuple[str, bool]]] = {}

    def strip(step: Step) -> Step:
        if isinstance(step, GroupStep):
            step = dataclasses.replace(step, steps=[strip(child) for child in step.steps])
        if not step.depends_on:
            return step
        outside = [d for d in step.depends_on if d.key not in own_keys and d.key in external]
        if not outside:
            return step
        kept = [d for d in step.depends_on if d not in outside]
        replaced = dataclasses.replace(step, depends_on=kept)
        edges[id(replaced)] = [(d.key, d.allow_failure) for d in outside]
        return replaced

    return [strip(step) for step in steps], edges


def _flatten(steps: list[Step]) -> list[Step]:
    flat: list[Step] = []
    for step in steps:
        flat.append(step)
        if isinstance(step, GroupStep):
            flat.extend(step.steps)
    return flat


def _initial_state(step: Step, group: Step | None, context: BuildContext) -> JobState:
    """`broken` when `branches` or `if` (the step's or its group's) rule it out."""
    for candidate in (group, step):
        if candidate is None:
            continue
        if candidate.branches and not branch_matches(candidate.branches, context.branch):
            return JobState.BROKEN
        if candidate.if_ is not None:
            try:
                if not evaluate_condition(candidate.if_, context.condition_context()):
                    return JobState.BROKEN
            except PipelineError as error:
                raise ValidationFailed.field("configuration", str(error)) from error
        if getattr(candidate, "skip", False):
            return JobState.SKIPPED
    return JobState.WAITING


def _command_jobs(
    step: CommandStep, definition: PipelineDefinition, state: JobState, common: dict[str, Any]
) -> list[PlannedJob]:
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
                concurrency=step.concurrency,
                concurrency_group=step.concurrency_group,
                definition=StepDefinition(
                    soft_fail=spec.soft_fail,
                    automatic_retry=[
                        AutomaticRetry(**dataclasses.asdict(rule)) for rule in step.retry.automatic
                    ],
                    manual_retry=ManualRetry(**dataclasses.asdict(step.retry.manual)),
                    cancel_on_build_failing=step.cancel_on_build_failing,
                    matrix=spec.matrix,
                    parallel_job=spec.parallel_job,
                    parallel_job_count=spec.parallel_job_count,
                ),
                **common,
            )
        )
    return jobs


def _block_job(step: BlockStep, state: JobState, common: dict[str, Any]) -> PlannedJob:
    fields = []
    for item in step.fields:
        described = dataclasses.asdict(item)
        described["type"] = "select" if isinstance(item, SelectField) else "text"
        fields.append(described)
    return PlannedJob(
        type=JobType.MANUAL,
        state=state,
        label=step.label,
        definition=StepDefinition(
            kind=step.kind, prompt=step.prompt, fields=fields, blocked_state=step.blocked_state
        ),
        **common,
    )


def _trigger_job(step: TriggerStep, state: JobState, common: dict[str, Any]) -> PlannedJob:
    return PlannedJob(
        type=JobType.TRIGGER,
        state=state,
        label=step.label,
        definition=StepDefinition(
            trigger=step.trigger,
            build=dataclasses.asdict(step.build),
            async_=step.async_,
            soft_fail=step.soft_fail,
        ),
        **common,
    )
