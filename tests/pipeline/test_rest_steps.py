"""REST's step shapes: the pipeline `steps` field, and legacy create-pipeline bodies."""

import pytest

from kiteline.pipeline import (
    BlockStep,
    CommandStep,
    PipelineError,
    TriggerStep,
    WaitStep,
    from_legacy_steps,
    parse_pipeline,
    to_rest_steps,
)


def test_rest_steps_for_every_step_type():
    pipeline = parse_pipeline(
        """
agents: {os: linux}
steps:
  - label: Build
    command: [make, make test]
    artifact_paths: [dist/*, logs/*]
    branches: "main release/*"
    env: {A: b}
    timeout_in_minutes: 10
    concurrency: 1
    concurrency_group: builds
    parallelism: 2
  - wait
  - block: Ship it?
    branches: main
  - trigger: deploy
    label: Deploy
    async: true
    build: {branch: main, commit: abc123}
"""
    )
    assert to_rest_steps(pipeline) == [
        {
            "type": "script",
            "name": "Build",
            "command": "make\nmake test",
            "artifact_paths": "dist/*;logs/*",
            "branch_configuration": "main release/*",
            "env": {"A": "b"},
            "timeout_in_minutes": 10,
            "agent_query_rules": ["queue=default", "os=linux"],
            "concurrency": 1,
            "parallelism": 2,
        },
        {"type": "waiter"},
        {"type": "manual", "label": "Ship it?", "branch_configuration": "main"},
        {
            "type": "trigger",
            "label": "Deploy",
            "trigger_project_slug": "deploy",
            "trigger_commit": "abc123",
            "trigger_branch": "main",
            "trigger_async": True,
            "branch_configuration": None,
        },
    ]


def test_rest_steps_put_the_named_queue_first_and_show_group_steps_flat():
    pipeline = parse_pipeline(
        "steps: [{group: G, steps: [{command: x, agents: {os: mac, queue: macs}}]}]"
    )
    [step] = to_rest_steps(pipeline)
    assert step["agent_query_rules"] == ["queue=macs", "os=mac"]


def test_legacy_steps_become_a_pipeline():
    pipeline = from_legacy_steps(
        [
            {
                "type": "script",
                "name": "Build",
                "command": "make build",
                "agent_query_rules": ["queue=builders"],
                "branch_configuration": "main",
                "env": {"A": "b"},
                "timeout_in_minutes": 5,
                "artifact_paths": "dist/*",
            },
            {"type": "waiter"},
            {"type": "manual", "label": "Deploy?"},
            {
                "type": "trigger",
                "label": "Downstream",
                "trigger_project_slug": "other",
                "trigger_branch": "main",
                "trigger_async": True,
            },
        ]
    )
    build, wait, block, trigger = pipeline.steps
    assert isinstance(build, CommandStep)
    assert (build.label, build.command, build.agents, build.branches) == (
        "Build",
        "make build",
        {"queue": "builders"},
        ["main"],
    )
    assert (build.env, build.timeout_in_minutes, build.artifact_paths) == (
        {"A": "b"},
        5,
        ["dist/*"],
    )
    assert isinstance(wait, WaitStep)
    assert isinstance(block, BlockStep) and block.label == "Deploy?"
    assert isinstance(trigger, TriggerStep)
    assert (trigger.trigger, trigger.build.branch, trigger.async_) == ("other", "main", True)


def test_legacy_step_raw_is_pipeline_yml_that_parses_back_the_same():
    pipeline = from_legacy_steps([{"type": "script", "name": "Build", "command": "make"}])
    assert pipeline.steps[0].raw == {"label": "Build", "command": "make"}
    assert parse_pipeline({"steps": [pipeline.steps[0].raw]}).steps == pipeline.steps


def test_legacy_steps_with_unknown_types_and_bad_values_report_every_issue():
    with pytest.raises(PipelineError) as caught:
        from_legacy_steps(
            [
                {"type": "script", "command": "x", "timeout_in_minutes": -1},
                {"type": "bogus"},
                {"type": "trigger"},
            ]
        )
    assert [str(issue) for issue in caught.value.issues] == [
        "Step 2: type must be one of script, waiter, manual, trigger",
        "Step 1: timeout_in_minutes must be a positive integer",
        "Step 3: trigger is required",
    ]
