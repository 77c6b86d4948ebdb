"""pipeline.yml (or already-decoded data) → a validated Pipeline, collecting every issue.

Step types are told apart as the agent does on upload: a bare string (`wait`, `block`, ...),
then an explicit `type:`, then which keys are present. The nested form (`- command: {...}`)
is accepted too. Unknown keys on a step are ignored, and kept in its `raw`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from kiteline.pipeline.document import load_document
from kiteline.pipeline.errors import PipelineError, PipelineIssue, StepRef
from kiteline.pipeline.graph import build_step_graph
from kiteline.pipeline.models import (
    GroupStep,
    Pipeline,
    Step,
    TriggerBuild,
    TriggerStep,
    WaitStep,
)
from kiteline.pipeline.parse_block import BLOCK_LABEL_KEYS, read_block_step
from kiteline.pipeline.parse_command import read_command_step
from kiteline.pipeline.parse_common import (
    LABEL_ALIASES,
    guess_key,
    guess_label,
    read_common,
    read_notify,
)
from kiteline.pipeline.reader import Reader
from kiteline.pipeline.step_keys import KIND_KEYS, KNOWN_KEYS, did_you_mean, misspelt_keys

StepKind: TypeAlias = Literal["command", "wait", "block", "input", "trigger", "group"]

_SCALAR_KINDS: dict[str, StepKind] = {
    "wait": "wait",
    "waiter": "wait",
    "block": "block",
    "manual": "block",
    "input": "input",
}
_TYPE_KINDS: dict[str, StepKind] = {
    "command": "command",
    "commands": "command",
    "script": "command",
    **_SCALAR_KINDS,
    "trigger": "trigger",
    "group": "group",
}
# `- command: {command: make, label: Build}` and friends.
_NESTED_KINDS: dict[str, StepKind] = {
    "command": "command",
    "commands": "command",
    "script": "command",
    "wait": "wait",
    "waiter": "wait",
    "block": "block",
    "input": "input",
    "trigger": "trigger",
}
_KEY_PRESENCE: tuple[tuple[tuple[str, ...], StepKind], ...] = (
    (("command", "commands", "plugins"), "command"),
    (("wait", "waiter"), "wait"),
    (("block", "manual"), "block"),
    (("input",), "input"),
    (("trigger",), "trigger"),
    (("group",), "group"),
)
_WAIT_LABEL_KEYS = ("wait", "waiter", *LABEL_ALIASES)
_GROUP_LABEL_KEYS = ("group", *LABEL_ALIASES)
_LABEL_KEYS: dict[StepKind, tuple[str, ...]] = {
    "command": LABEL_ALIASES,
    "wait": _WAIT_LABEL_KEYS,
    "block": BLOCK_LABEL_KEYS,
    "input": BLOCK_LABEL_KEYS,
    "trigger": LABEL_ALIASES,
    "group": _GROUP_LABEL_KEYS,
}
_STEP_WORDS = "command, wait, block, input, trigger or group"


def parse_pipeline(source: str | bytes | dict[str, Any] | list[Any] | None) -> Pipeline:
    """A validated pipeline from YAML or JSON text, or from already-decoded data.

    A bare top-level list is the step list. Raises PipelineError listing every issue found.
    """
    data = load_document(source) if isinstance(source, str | bytes) else source
    issues: list[PipelineIssue] = []
    pipeline = read_pipeline(data, issues)
    if issues:
        raise PipelineError(issues)
    return pipeline


def check_pipeline(source: str | bytes | dict[str, Any] | list[Any] | None) -> Pipeline:
    """`parse_pipeline`, then the whole step graph: every `depends_on` names a step of this
    pipeline, and no steps wait for each other. What a pipeline's saved steps must pass (an
    upload's dependencies may also name steps already in the build: the server checks those)."""
    pipeline = parse_pipeline(source)
    build_step_graph(pipeline.steps)
    return pipeline


def read_pipeline(data: Any, issues: list[PipelineIssue]) -> Pipeline:
    """The pipeline in `data`, appending any problems to `issues`."""
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, Mapping):
        issues.append(
            PipelineIssue(path="", message="Pipeline must be a map with steps, or a list of steps")
        )
        return Pipeline()
    top = Reader(data, StepRef.document(), issues)
    if not top.has("steps"):
        top.report("steps", "is required")
    return Pipeline(
        steps=_read_steps(top, StepRef.document(), seen_keys={}, in_group=False),
        env=top.string_map("env"),
        agents=top.agents("agents"),
        notify=read_notify(top),
        priority=top.integer("priority"),
        secrets=top.string_or_map_list("secrets"),
        raw=dict(data),
    )


def _read_steps(
    reader: Reader, parent: StepRef, *, seen_keys: dict[str, str], in_group: bool
) -> list[Step]:
    value = reader.items("steps", "steps")
    steps: list[Step] = []
    for index, item in enumerate(value):
        step = _read_step(item, parent, index, reader.issues, seen_keys, in_group)
        if step is not None:
            steps.append(step)
    return steps


def _read_step(
    item: Any,
    parent: StepRef,
    index: int,
    issues: list[PipelineIssue],
    seen_keys: dict[str, str],
    in_group: bool,
) -> Step | None:
    kind, body = _detect(item)
    data: Mapping[str, Any] = body if body is not None else {}
    label_keys = _LABEL_KEYS[kind] if kind is not None else LABEL_ALIASES
    ref = parent.step(index, guess_key(data), guess_label(data, label_keys))
    if kind is None:
        issues.append(ref.issue("", _unknown_step(item)))
        return None
    for key, suggestion in misspelt_keys(data, KNOWN_KEYS[kind]):
        issues.append(
            ref.issue(key, f'"{key}" is not a key of a {kind} step; did you mean "{suggestion}"?')
        )
    if kind == "group" and in_group:
        issues.append(ref.issue("group", "groups can't be nested inside another group"))
        return None
    raw = dict(item) if isinstance(item, Mapping) else {"type": item}
    reader = Reader(data, ref, issues)
    if kind == "command":
        return read_command_step(reader, raw, seen_keys)
    if kind == "block" or kind == "input":
        return read_block_step(reader, raw, kind, seen_keys)
    if kind == "wait":
        return _read_wait(reader, raw, seen_keys)
    if kind == "trigger":
        return _read_trigger(reader, raw, seen_keys)
    return _read_group(reader, raw, seen_keys)


def _detect(item: Any) -> tuple[StepKind | None, Mapping[str, Any] | None]:
    """The step's type and the map that holds its keys."""
    if isinstance(item, str):
        return _SCALAR_KINDS.get(item.strip()), {}
    if not isinstance(item, Mapping):
        return None, None
    if "type" in item:
        return _TYPE_KINDS.get(str(item["type"])), item
    if len(item) == 1:
        [(name, value)] = item.items()
        if name in _NESTED_KINDS and isinstance(value, Mapping):
            return _NESTED_KINDS[name], value
    for keys, kind in _KEY_PRESENCE:
        if any(key in item for key in keys):
            return kind, item
    return None, item


def _unknown_step(item: Any) -> str:
    if isinstance(item, str):
        return f'"{item}" is not a step; a step written as a string must be wait, block or input'
    if isinstance(item, Mapping) and "type" in item:
        return f'type "{item["type"]}" is not a step type; expected {_STEP_WORDS}'
    if isinstance(item, Mapping):
        hints = [did_you_mean(str(key), KIND_KEYS) for key in item]
        hint = next((text for text in hints if text), "")
        return f"has none of the keys that make a step ({_STEP_WORDS}){hint}"
    return "must be a map, or one of the strings wait, block and input"


def _read_wait(reader: Reader, raw: dict[str, Any], seen_keys: dict[str, str]) -> WaitStep:
    common = read_common(reader, raw, _WAIT_LABEL_KEYS, seen_keys)
    return WaitStep(**common.fields(), continue_on_failure=reader.boolean("continue_on_failure"))


def _read_trigger(reader: Reader, raw: dict[str, Any], seen_keys: dict[str, str]) -> TriggerStep:
    common = read_common(reader, raw, LABEL_ALIASES, seen_keys)
    build = reader.mapping("build")
    return TriggerStep(
        **common.fields(),
        trigger=reader.string("trigger", required=True) or "",
        build=_read_trigger_build(build) if build is not None else TriggerBuild(),
        async_=reader.boolean("async"),
        soft_fail=reader.soft_fail(),
        skip=reader.skip(),
    )


def _read_trigger_build(build: Reader) -> TriggerBuild:
    return TriggerBuild(
        branch=build.string("branch"),
        commit=build.string("commit") or "HEAD",
        message=build.string("message"),
        env=build.string_map("env"),
        meta_data=build.string_map("meta_data"),
    )


def _read_group(reader: Reader, raw: dict[str, Any], seen_keys: dict[str, str]) -> GroupStep:
    common = read_common(reader, raw, _GROUP_LABEL_KEYS, seen_keys)
    if not reader.has("steps"):
        reader.report("steps", "is required")
    elif reader.get("steps") == []:
        reader.report("steps", "must contain at least one step")
    return GroupStep(
        **common.fields(),
        group=common.label,
        steps=_read_steps(reader, reader.ref, seen_keys=seen_keys, in_group=True),
        notify=read_notify(reader),
        skip=reader.skip(),
    )
