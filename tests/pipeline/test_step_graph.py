"""The step dependency graph: wait/block barriers, input steps, depends_on, groups, cycles."""

import pytest

from kiteline.pipeline import (
    GraphEdge,
    GraphNode,
    GroupStep,
    PipelineError,
    build_step_graph,
    parse_pipeline,
)


def graph(yaml_text: str) -> list[GraphNode]:
    return build_step_graph(parse_pipeline(yaml_text).steps)


def targets(node: GraphNode) -> list[int]:
    return [edge.index for edge in node.depends_on]


def implicit(*indices: int, allow_failure: bool = False) -> list[GraphEdge]:
    return [GraphEdge(index=i, allow_failure=allow_failure, implicit=True) for i in indices]


def explicit(*indices: int, allow_failure: bool = False) -> list[GraphEdge]:
    return [GraphEdge(index=i, allow_failure=allow_failure, implicit=False) for i in indices]


def test_steps_before_any_wait_have_no_dependencies():
    nodes = graph("steps: [{command: a}, {command: b}]")
    assert [node.depends_on for node in nodes] == [[], []]


def test_wait_step_depends_on_every_earlier_step():
    nodes = graph("steps: [{command: a}, {command: b}, wait, {command: c}]")
    assert nodes[2].depends_on == implicit(0, 1)


def test_steps_after_a_wait_depend_only_on_the_wait():
    nodes = graph("steps: [{command: a}, wait, {command: b}, {command: c}]")
    assert [targets(nodes[2]), targets(nodes[3])] == [[1], [1]]


def test_second_wait_depends_on_the_first_wait_and_steps_since():
    nodes = graph("steps: [{command: a}, wait, {command: b}, {command: c}, wait, {command: d}]")
    assert nodes[4].depends_on == implicit(1, 2, 3)
    assert targets(nodes[5]) == [4]


def test_consecutive_waits_chain():
    nodes = graph("steps: [{command: a}, wait, wait, {command: b}]")
    assert [targets(node) for node in nodes] == [[], [0], [1], [2]]


def test_block_step_is_a_barrier_like_wait():
    nodes = graph("steps: [{command: a}, {block: Deploy}, {command: b}]")
    assert [targets(node) for node in nodes] == [[], [0], [1]]


def test_input_step_has_no_implicit_dependencies_and_is_no_barrier():
    nodes = graph("steps: [{command: a}, {input: Details}, {command: b}, wait, {command: c}]")
    assert [targets(node) for node in nodes] == [[], [], [], [0, 2], [3]]


def test_later_steps_can_wait_for_an_input_step_explicitly():
    nodes = graph("steps: [{input: Details, key: details}, {command: b, depends_on: details}]")
    assert nodes[1].depends_on == explicit(0)


def test_continue_on_failure_wait_allows_failed_dependencies():
    nodes = graph("steps: [{command: a}, {wait: ~, continue_on_failure: true}, {command: b}]")
    assert nodes[1].depends_on == implicit(0, allow_failure=True)
    assert nodes[2].depends_on == implicit(1)


def test_allow_dependency_failure_marks_implicit_edges():
    nodes = graph("steps: [{command: a}, wait, {command: b, allow_dependency_failure: true}]")
    assert nodes[2].depends_on == implicit(1, allow_failure=True)


def test_explicit_depends_on_replaces_the_implicit_wait():
    nodes = graph("steps: [{command: a, key: a}, {command: b}, wait, {command: c, depends_on: a}]")
    assert nodes[3].depends_on == explicit(0)


def test_explicit_allow_failure_per_dependency_and_per_step():
    nodes = graph(
        """
steps:
  - {command: a, key: a}
  - {command: b, key: b}
  - command: c
    depends_on: [{step: a, allow_failure: true}, b]
  - {command: d, depends_on: b, allow_dependency_failure: true}
"""
    )
    assert nodes[2].depends_on == [
        GraphEdge(index=0, allow_failure=True),
        GraphEdge(index=1, allow_failure=False),
    ]
    assert nodes[3].depends_on == explicit(1, allow_failure=True)


@pytest.mark.parametrize("none", ["~", "[]"])
def test_empty_depends_on_ignores_waits(none):
    nodes = graph(f"steps: [{{command: a}}, wait, {{command: b, depends_on: {none}}}]")
    assert nodes[2].depends_on == []


def test_wait_still_waits_for_steps_that_ignore_earlier_waits():
    nodes = graph("steps: [wait, {command: a, depends_on: ~}, wait]")
    assert targets(nodes[2]) == [0, 1]


def test_groups_are_flattened_with_children_and_group_index():
    nodes = graph("steps: [{command: a}, {group: G, steps: [{command: b}, {command: c}]}]")
    assert [(node.index, node.group_index, node.children) for node in nodes] == [
        (0, None, []),
        (1, None, [2, 3]),
        (2, 1, []),
        (3, 1, []),
    ]
    assert isinstance(nodes[1].step, GroupStep)


def test_group_steps_inherit_the_groups_dependencies():
    nodes = graph("steps: [{command: a}, wait, {group: G, steps: [{command: b}, {command: c}]}]")
    assert nodes[2].depends_on == implicit(1)
    assert nodes[3].depends_on == implicit(1)
    assert nodes[4].depends_on == implicit(1)


def test_wait_inside_a_group_orders_only_the_groups_steps():
    nodes = graph(
        """
steps:
  - command: a
  - group: G
    steps: [{command: b}, wait, {command: c}]
"""
    )
    assert [targets(node) for node in nodes] == [[], [], [], [2], [3]]


def test_wait_after_a_group_depends_on_the_group_node():
    nodes = graph(
        "steps: [{command: a}, {group: G, steps: [{command: b}, {command: c}]}, wait, {command: d}]"
    )
    assert nodes[4].depends_on == implicit(0, 1)
    assert targets(nodes[5]) == [4]


def test_group_explicit_dependencies_gate_every_step_in_it():
    nodes = graph(
        """
steps:
  - {command: a, key: a}
  - {command: b, key: b}
  - group: G
    depends_on: a
    steps:
      - {command: c}
      - {command: d, depends_on: b}
"""
    )
    assert nodes[2].depends_on == explicit(0)
    assert nodes[3].depends_on == implicit(0)
    assert nodes[4].depends_on == [
        GraphEdge(index=0, implicit=True),
        GraphEdge(index=1, implicit=False),
    ]


def test_depending_on_a_group_key_means_the_group_node():
    nodes = graph(
        "steps: [{group: G, key: tests, steps: [{command: a}]}, {command: b, depends_on: tests}]"
    )
    assert nodes[2].depends_on == explicit(0)


def test_depending_on_a_step_inside_a_group_from_outside():
    nodes = graph("steps: [{group: G, steps: [{command: a, key: a}]}, {command: b, depends_on: a}]")
    assert nodes[2].depends_on == explicit(1)


def test_duplicate_dependencies_collapse_to_one_edge():
    nodes = graph("steps: [{command: a, key: a}, {command: b, depends_on: [a, a]}]")
    assert nodes[1].depends_on == explicit(0)


def test_unknown_dependency_keys_are_all_reported():
    steps = parse_pipeline(
        "steps: [{command: a, key: deploy, depends_on: [build, lint]}, {command: b, depends_on: x}]"
    ).steps
    with pytest.raises(PipelineError) as caught:
        build_step_graph(steps)
    assert [str(issue) for issue in caught.value.issues] == [
        'Step 1 ("deploy"): depends_on names "build", but no step has that key',
        'Step 1 ("deploy"): depends_on names "lint", but no step has that key',
        'Step 2: depends_on names "x", but no step has that key',
    ]
    assert caught.value.issues[0].path == 'steps[0] (key "deploy").depends_on'


@pytest.mark.parametrize(
    ("pipeline", "cycle"),
    [
        pytest.param(
            "steps: [{command: a, key: a, depends_on: b}, {command: b, key: b, depends_on: a}]",
            'Step 1 ("a"): depends_on makes steps wait for each other: '
            'step 1 ("a") → step 2 ("b") → step 1 ("a")',
            id="two-steps",
        ),
        pytest.param(
            "steps: [{command: a, key: a, depends_on: a}]",
            'Step 1 ("a"): depends_on makes steps wait for each other: step 1 ("a") → step 1 ("a")',
            id="a-step-on-itself",
        ),
        pytest.param(
            "steps: [{group: G, key: g, steps: [{command: a, depends_on: g}]}]",
            'Step 1 ("g"): depends_on makes steps wait for each other: '
            'step 1 ("g") → step 1.1 → step 1 ("g")',
            id="a-step-on-its-own-group",
        ),
    ],
)
def test_a_dependency_cycle_is_an_error_naming_the_steps(pipeline, cycle):
    steps = parse_pipeline(pipeline).steps
    with pytest.raises(PipelineError) as caught:
        build_step_graph(steps)
    assert str(caught.value) == cycle


def test_long_chains_do_not_hit_recursion_limits():
    steps = parse_pipeline({"steps": [{"command": "x"}, "wait"] * 2000}).steps
    nodes = build_step_graph(steps)
    assert targets(nodes[-1]) == [3997, 3998]
