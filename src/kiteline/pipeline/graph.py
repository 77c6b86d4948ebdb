"""The step dependency graph: groups flattened, implicit wait/block edges, explicit `depends_on`.

Rules, per level (the top level, or inside one group):

* A wait or block step depends on every step since the previous wait/block, and on that
  wait/block. A wait's `continue_on_failure` makes those edges allow failure.
* Any other step depends on the nearest preceding wait/block.
* Input steps take part in neither: they have no implicit dependencies and nothing waits for
  them implicitly, as Buildkite documents ("don't implicitly depend on the steps around it");
  only explicit dependents and the build's completion wait for them.
* An explicit `depends_on` replaces the implicit edges (Buildkite: such a step "will run
  without waiting for block or wait steps unless those are also explicit dependencies");
  `depends_on: []` / `~` means no dependencies at all.
* A group node depends on what the group depends on; every step inside it also inherits
  those edges (a group's dependencies gate all of its steps, even ones with explicit
  `depends_on`). Waits inside a group only order the group's own steps. A group node finishes
  when all its `children` finish, so a wait after a group depends on the group node.
* A dependency on a group key points at the group node. Unknown keys and cycles are errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from kiteline.pipeline.errors import PipelineError, PipelineIssue, StepRef
from kiteline.pipeline.models import BlockStep, GroupStep, Step, WaitStep
from kiteline.pipeline.step_keys import did_you_mean


@dataclass(frozen=True, kw_only=True)
class GraphEdge:
    index: int
    allow_failure: bool = False
    implicit: bool = False


@dataclass(frozen=True, kw_only=True)
class GraphNode:
    index: int
    step: Step
    group_index: int | None
    depends_on: list[GraphEdge]
    children: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Flat:
    step: Step
    ref: StepRef
    group_index: int | None
    children: list[int]


def build_step_graph(steps: Sequence[Step]) -> list[GraphNode]:
    """One node per step, groups (and their steps) included, in pipeline order."""
    flat = _flatten(steps)
    keys = {item.step.key: index for index, item in enumerate(flat) if item.step.key is not None}
    issues: list[PipelineIssue] = []
    edges: dict[int, list[GraphEdge]] = {}
    top_level = [index for index, item in enumerate(flat) if item.group_index is None]
    edges.update(_level_edges(top_level, flat, keys, issues))
    for group_index in top_level:
        children = flat[group_index].children
        inherited = [_as_implicit(edge) for edge in edges[group_index]]
        for index, own in _level_edges(children, flat, keys, issues).items():
            edges[index] = _merge(inherited + own)
    if issues:
        raise PipelineError(issues)
    nodes = [
        GraphNode(
            index=index,
            step=item.step,
            group_index=item.group_index,
            depends_on=edges[index],
            children=list(item.children),
        )
        for index, item in enumerate(flat)
    ]
    _check_acyclic(nodes, flat)
    return nodes


def _flatten(steps: Sequence[Step]) -> list[_Flat]:
    flat: list[_Flat] = []
    top = StepRef.document()
    for position, step in enumerate(steps):
        ref = top.step(position, step.key, step.label)
        if not isinstance(step, GroupStep):
            flat.append(_Flat(step, ref, None, []))
            continue
        group_index = len(flat)
        children = list(range(group_index + 1, group_index + 1 + len(step.steps)))
        flat.append(_Flat(step, ref, None, children))
        for child_position, child in enumerate(step.steps):
            child_ref = ref.step(child_position, child.key, child.label)
            flat.append(_Flat(child, child_ref, group_index, []))
    return flat


def _level_edges(
    level: list[int], flat: list[_Flat], keys: dict[str, int], issues: list[PipelineIssue]
) -> dict[int, list[GraphEdge]]:
    """Edges of the steps of one level, before anything is inherited from a group."""
    edges: dict[int, list[GraphEdge]] = {}
    barrier: int | None = None
    since_barrier: list[int] = []
    for index in level:
        step = flat[index].step
        is_barrier = isinstance(step, WaitStep) or (
            isinstance(step, BlockStep) and step.kind == "block"
        )
        is_input = isinstance(step, BlockStep) and step.kind == "input"
        if step.depends_on is not None:
            edges[index] = _explicit_edges(flat[index], keys, issues)
        elif is_input:
            edges[index] = []
        else:
            targets = [barrier] if barrier is not None else []
            if is_barrier:
                targets += since_barrier
            allow = step.allow_dependency_failure or (
                isinstance(step, WaitStep) and step.continue_on_failure
            )
            edges[index] = [GraphEdge(index=t, allow_failure=allow, implicit=True) for t in targets]
        if is_barrier:
            barrier, since_barrier = index, []
        elif not is_input:
            since_barrier.append(index)
    return edges


def _explicit_edges(
    item: _Flat, keys: dict[str, int], issues: list[PipelineIssue]
) -> list[GraphEdge]:
    step = item.step
    edges: list[GraphEdge] = []
    for dependency in step.depends_on or []:
        target = keys.get(dependency.key)
        if target is None:
            hint = did_you_mean(dependency.key, keys)
            message = f'depends_on names "{dependency.key}", but no step has that key{hint}'
            issues.append(item.ref.issue("depends_on", message))
            continue
        allow = dependency.allow_failure or step.allow_dependency_failure
        edges.append(GraphEdge(index=target, allow_failure=allow))
    return _merge(edges)


def _as_implicit(edge: GraphEdge) -> GraphEdge:
    return GraphEdge(index=edge.index, allow_failure=edge.allow_failure, implicit=True)


def _merge(edges: list[GraphEdge]) -> list[GraphEdge]:
    """One edge per target, in first-seen order; failure is allowed only if every edge allows
    it, and an edge is implicit only if every edge to that target is."""
    merged: dict[int, GraphEdge] = {}
    for edge in edges:
        seen = merged.get(edge.index)
        if seen is None:
            merged[edge.index] = edge
        else:
            merged[edge.index] = GraphEdge(
                index=edge.index,
                allow_failure=seen.allow_failure and edge.allow_failure,
                implicit=seen.implicit and edge.implicit,
            )
    return list(merged.values())


def _check_acyclic(nodes: list[GraphNode], flat: list[_Flat]) -> None:
    """Depth-first search over dependencies, plus group → child (a group waits for its steps)."""
    waits_for = [[edge.index for edge in node.depends_on] + node.children for node in nodes]
    state = [0] * len(nodes)  # 0 unvisited, 1 on the current path, 2 done
    for start in range(len(nodes)):
        if state[start] != 0:
            continue
        state[start] = 1
        path = [start]
        stack = [iter(waits_for[start])]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                state[path.pop()] = 2
            elif state[target] == 1:
                _raise_cycle([*path[path.index(target) :], target], flat)
            elif state[target] == 0:
                state[target] = 1
                path.append(target)
                stack.append(iter(waits_for[target]))


def _raise_cycle(cycle: list[int], flat: list[_Flat]) -> NoReturn:
    shown = " → ".join(flat[index].ref.mention for index in cycle)
    first = flat[cycle[0]].ref
    raise PipelineError(
        [first.issue("depends_on", f"depends_on makes steps wait for each other: {shown}")]
    )
