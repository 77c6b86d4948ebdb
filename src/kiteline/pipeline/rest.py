"""REST's older step shapes: a pipeline's `steps` field, and legacy create-pipeline bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiteline.pipeline.errors import PipelineError, PipelineIssue, StepRef
from kiteline.pipeline.models import (
    BlockStep,
    CommandStep,
    GroupStep,
    Pipeline,
    Step,
    TriggerStep,
    WaitStep,
)
from kiteline.pipeline.parse import read_pipeline

DEFAULT_QUEUE = "default"


def agent_query_rules(agents: Mapping[str, str]) -> list[str]:
    """`{os: linux}` → `["queue=default", "os=linux"]`: the queue first, `default` if not named."""
    queue = agents.get("queue", DEFAULT_QUEUE)
    return [f"queue={queue}"] + [f"{k}={v}" for k, v in agents.items() if k != "queue"]


def to_rest_steps(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The pipeline's steps as REST shows them (groups are shown as their steps)."""
    return [_rest_step(step, pipeline) for step in _without_groups(pipeline.steps)]


def _without_groups(steps: list[Step]) -> list[Step]:
    return [
        inner for step in steps for inner in (step.steps if isinstance(step, GroupStep) else [step])
    ]


def _rest_step(step: Step, pipeline: Pipeline) -> dict[str, Any]:
    branches = " ".join(step.branches) or None
    if isinstance(step, CommandStep):
        return {
            "type": "script",
            "name": step.label,
            "command": step.command,
            "artifact_paths": ";".join(step.artifact_paths) or None,
            "branch_configuration": branches,
            "env": dict(step.env),
            "timeout_in_minutes": step.timeout_in_minutes,
            "agent_query_rules": agent_query_rules({**pipeline.agents, **step.agents}),
            "concurrency": step.concurrency,
            "parallelism": step.parallelism,
        }
    if isinstance(step, WaitStep):
        return {"type": "waiter"}
    if isinstance(step, BlockStep):
        return {"type": "manual", "label": step.label, "branch_configuration": branches}
    assert isinstance(step, TriggerStep)
    return {
        "type": "trigger",
        "label": step.label,
        "trigger_project_slug": step.trigger,
        "trigger_commit": step.build.commit,
        "trigger_branch": step.build.branch,
        "trigger_async": step.async_,
        "branch_configuration": branches,
    }


def from_legacy_steps(steps: list[Any]) -> Pipeline:
    """A pipeline from REST's legacy `steps` body (`{"type": "script", "name": ...}`,
    `{"type": "waiter"}`, `{"type": "manual", "label": ...}`, `{"type": "trigger", ...}`).
    Each step's `raw` is its pipeline.yml form. Raises PipelineError listing every issue."""
    issues: list[PipelineIssue] = []
    converted: list[dict[str, Any]] = []
    document = StepRef.document()
    for index, step in enumerate(steps):
        kind = step.get("type") if isinstance(step, Mapping) else None
        convert = _CONVERTERS.get(str(kind))
        if convert is None or not isinstance(step, Mapping):
            expected = ", ".join(_CONVERTERS)
            ref = document.step(index, None, None)
            issues.append(ref.issue("type", f"type must be one of {expected}"))
            converted.append({"wait": None})  # keeps later steps' positions in their issues
        else:
            converted.append(convert(step))
    pipeline = read_pipeline({"steps": converted}, issues)
    if issues:
        raise PipelineError(issues)
    return pipeline


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}


def _script(step: Mapping[str, Any]) -> dict[str, Any]:
    rules = step.get("agent_query_rules")
    converted = _present(
        {
            "label": step.get("name") or step.get("label"),
            "key": step.get("key"),
            "command": step.get("command") or "",
            "artifact_paths": step.get("artifact_paths"),
            "branches": step.get("branch_configuration"),
            "env": step.get("env"),
            "timeout_in_minutes": step.get("timeout_in_minutes"),
            "agents": list(rules) if isinstance(rules, list) else rules,
            "concurrency": step.get("concurrency"),
            "concurrency_group": step.get("concurrency_group"),
            "parallelism": step.get("parallelism"),
        }
    )
    converted.setdefault("command", "")
    return converted


def _waiter(step: Mapping[str, Any]) -> dict[str, Any]:
    return {"wait": None} | _present({"continue_on_failure": step.get("continue_on_failure")})


def _manual(step: Mapping[str, Any]) -> dict[str, Any]:
    return {"block": step.get("label") or step.get("name")} | _present(
        {
            "prompt": step.get("prompt"),
            "fields": step.get("fields"),
            "branches": step.get("branch_configuration"),
        }
    )


def _trigger(step: Mapping[str, Any]) -> dict[str, Any]:
    build = _present(
        {
            "commit": step.get("trigger_commit"),
            "branch": step.get("trigger_branch"),
            "message": step.get("trigger_message"),
            "env": step.get("trigger_env"),
        }
    )
    return {"trigger": step.get("trigger_project_slug")} | _present(
        {
            "label": step.get("label") or step.get("name"),
            "build": build,
            "async": step.get("trigger_async"),
            "branches": step.get("branch_configuration"),
        }
    )


_CONVERTERS = {"script": _script, "waiter": _waiter, "manual": _manual, "trigger": _trigger}
