"""How pipeline.yml steps of every type and alias become step models."""

import json

import pytest

from kiteline.pipeline import (
    AutomaticRetryRule,
    BlockStep,
    CommandStep,
    Dependency,
    GroupStep,
    ManualRetry,
    PipelineError,
    SelectField,
    SelectOption,
    TextField,
    TriggerBuild,
    TriggerStep,
    WaitStep,
    parse_pipeline,
)


def only_step(yaml_text: str):
    pipeline = parse_pipeline(yaml_text)
    assert len(pipeline.steps) == 1
    return pipeline.steps[0]


def test_top_level_keys_are_read():
    pipeline = parse_pipeline(
        """
env: {FOO: bar, COUNT: 3, ON: true}
agents: {queue: deploy}
priority: 5
notify: [github_check, {slack: "#builds", if: build.state == "failed"}]
steps: [{command: make}]
"""
    )
    assert pipeline.env == {"FOO": "bar", "COUNT": "3", "ON": "true"}
    assert pipeline.agents == {"queue": "deploy"}
    assert pipeline.priority == 5
    assert pipeline.notify == [
        {"github_check": {}},
        {"slack": "#builds", "if": 'build.state == "failed"'},
    ]


def test_bare_list_is_the_step_list():
    pipeline = parse_pipeline("- command: make\n- wait\n")
    assert [type(step) for step in pipeline.steps] == [CommandStep, WaitStep]


def test_json_text_and_decoded_data_parse_like_yaml():
    data = {"steps": [{"label": "Build", "command": "make"}]}
    from_json = parse_pipeline(json.dumps(data))
    from_dict = parse_pipeline(data)
    from_bytes = parse_pipeline(json.dumps(data).encode())
    assert from_json == from_dict == from_bytes
    assert from_dict.steps[0].label == "Build"


def test_commands_list_is_joined_with_newlines():
    step = only_step("steps: [{commands: [make, make test]}]")
    assert isinstance(step, CommandStep)
    assert step.command == "make\nmake test"


def test_command_step_without_command_has_empty_command():
    step = only_step("steps: [{plugins: [docker#v5.0.0]}]")
    assert isinstance(step, CommandStep)
    assert step.command == ""
    assert step.plugins == [{"docker#v5.0.0": None}]


def test_name_is_an_alias_of_label_and_id_and_identifier_of_key():
    first, second = parse_pipeline(
        "steps: [{name: Build, id: build, command: make}, {identifier: lint, command: lint}]"
    ).steps
    assert (first.key, first.label) == ("build", "Build")
    assert second.key == "lint"


def test_command_step_keys_are_normalised():
    step = only_step(
        """
steps:
  - label: Test
    command: make test
    env: {RAILS_ENV: test}
    agents: ["queue=linux", "os=ubuntu"]
    artifact_paths: "logs/*.log;coverage/**/*"
    timeout_in_minutes: "30"
    priority: -1
    cancel_on_build_failing: "true"
    concurrency: 1
    concurrency_group: deploys
    concurrency_method: eager
    branches: "main release/*"
    secrets: [API_TOKEN]
"""
    )
    assert isinstance(step, CommandStep)
    assert step.env == {"RAILS_ENV": "test"}
    assert step.agents == {"queue": "linux", "os": "ubuntu"}
    assert step.artifact_paths == ["logs/*.log", "coverage/**/*"]
    assert step.timeout_in_minutes == 30
    assert step.priority == -1
    assert step.cancel_on_build_failing is True
    assert (step.concurrency, step.concurrency_group, step.concurrency_method) == (
        1,
        "deploys",
        "eager",
    )
    assert step.branches == ["main", "release/*"]
    assert step.secrets == ["API_TOKEN"]


def test_unknown_step_keys_are_ignored_but_kept_in_raw():
    step = only_step("steps: [{command: make, cache: [node_modules], future_key: 1}]")
    assert step.raw == {"command": "make", "cache": ["node_modules"], "future_key": 1}


def test_plugins_strings_maps_and_legacy_map_form_become_a_list_of_single_key_maps():
    listed = only_step("steps: [{command: x, plugins: [a#v1, {b#v2: {image: node}}]}]")
    legacy = only_step("steps: [{command: x, plugins: {a#v1: null, b#v2: {image: node}}}]")
    expected = [{"a#v1": None}, {"b#v2": {"image": "node"}}]
    assert isinstance(listed, CommandStep) and isinstance(legacy, CommandStep)
    assert listed.plugins == legacy.plugins == expected


def test_retry_automatic_true_is_one_rule_for_any_exit_status_with_limit_two():
    step = only_step("steps: [{command: x, retry: {automatic: true}}]")
    assert isinstance(step, CommandStep)
    assert step.retry.automatic == [AutomaticRetryRule(exit_status="*", limit=2)]
    assert step.retry.manual == ManualRetry(allowed=True, permit_on_passed=False, reason=None)


def test_retry_rules_and_manual_settings_are_read():
    step = only_step(
        """
steps:
  - command: x
    retry:
      automatic:
        - {exit_status: -1, signal_reason: agent_stop, limit: 3}
        - {exit_status: [1, 2]}
      manual: {allowed: false, reason: "Deploys can't be retried"}
"""
    )
    assert isinstance(step, CommandStep)
    assert step.retry.automatic == [
        AutomaticRetryRule(exit_status=[-1], signal_reason="agent_stop", limit=3),
        AutomaticRetryRule(exit_status=[1, 2], limit=2),
    ]
    assert step.retry.manual == ManualRetry(allowed=False, reason="Deploys can't be retried")


def test_retry_manual_false_disallows_manual_retry():
    step = only_step("steps: [{command: x, retry: {manual: false}}]")
    assert isinstance(step, CommandStep)
    assert step.retry.manual.allowed is False


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("true", True),
        ('"false"', False),
        ("[{exit_status: 1}, {exit_status: '*'}]", [1, "*"]),
    ],
)
def test_soft_fail_is_a_flag_or_a_list_of_exit_statuses(written, expected):
    step = only_step(f"steps: [{{command: x, soft_fail: {written}}}]")
    assert isinstance(step, CommandStep)
    assert step.soft_fail == expected


def test_skip_is_a_flag_or_a_reason():
    flagged, reasoned = parse_pipeline(
        "steps: [{command: x, skip: true}, {command: y, skip: flaky on arm}]"
    ).steps
    assert isinstance(flagged, CommandStep) and isinstance(reasoned, CommandStep)
    assert (flagged.skip, reasoned.skip) == (True, "flaky on arm")


@pytest.mark.parametrize(
    "written", ["wait", "waiter", "{wait: ~}", "{waiter: null}", "{type: wait}"]
)
def test_every_wait_form_is_a_wait_step(written):
    step = only_step(f"steps: [{written}]")
    assert step == WaitStep(raw=step.raw)


def test_wait_step_label_and_continue_on_failure():
    step = only_step('steps: [{wait: "Checks", continue_on_failure: true, key: checks}]')
    assert isinstance(step, WaitStep)
    assert (step.label, step.key, step.continue_on_failure) == ("Checks", "checks", True)


def test_scalar_wait_keeps_a_raw_map_that_parses_back_the_same():
    step = only_step("steps: [wait]")
    assert step.raw == {"type": "wait"}
    assert parse_pipeline({"steps": [step.raw]}).steps == [step]


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("block", "block"),
        ("manual", "block"),
        ("input", "input"),
        ("{block: Deploy}", "block"),
        ("{input: Details}", "input"),
        ("{manual: Deploy}", "block"),
        ("{type: input, label: Details}", "input"),
    ],
)
def test_block_and_input_forms(written, kind):
    step = only_step(f"steps: [{written}]")
    assert isinstance(step, BlockStep)
    assert step.kind == kind


def test_block_step_fields_prompt_and_blocked_state():
    step = only_step(
        """
steps:
  - block: Release
    prompt: Fill in the details
    blocked_state: running
    fields:
      - text: Notes
        key: release-notes
        hint: Markdown
        format: "[a-z ]+"
        required: false
      - select: Stream
        key: stream
        default: beta
        options:
          - {label: Beta, value: beta}
          - {label: Stable, value: stable, hint: careful}
"""
    )
    assert isinstance(step, BlockStep)
    assert (step.label, step.prompt, step.blocked_state) == (
        "Release",
        "Fill in the details",
        "running",
    )
    assert step.fields == [
        TextField(
            key="release-notes", text="Notes", hint="Markdown", format="[a-z ]+", required=False
        ),
        SelectField(
            key="stream",
            select="Stream",
            default="beta",
            options=[
                SelectOption(label="Beta", value="beta"),
                SelectOption(label="Stable", value="stable", hint="careful"),
            ],
        ),
    ]


def test_multiple_select_takes_a_list_default():
    step = only_step(
        """
steps:
  - input: Pick
    fields:
      - select: Regions
        key: regions
        multiple: true
        default: [eu, us]
        options: [{label: EU, value: eu}, {label: US, value: us}]
"""
    )
    assert isinstance(step, BlockStep)
    field = step.fields[0]
    assert isinstance(field, SelectField)
    assert (field.multiple, field.default) == (True, ["eu", "us"])


def test_trigger_step_with_build_settings():
    step = only_step(
        """
steps:
  - trigger: deploy-app
    label: Deploy
    async: true
    build:
      branch: main
      message: "Deploy from ${BUILDKITE_BUILD_NUMBER}"
      env: {TARGET: prod}
      meta_data: {release: "1.2"}
"""
    )
    assert step == TriggerStep(
        trigger="deploy-app",
        label="Deploy",
        async_=True,
        build=TriggerBuild(
            branch="main",
            commit="HEAD",
            message="Deploy from ${BUILDKITE_BUILD_NUMBER}",
            env={"TARGET": "prod"},
            meta_data={"release": "1.2"},
        ),
        raw=step.raw,
    )


def test_group_step_holds_its_steps_and_takes_label_from_group_name_or_label():
    pipeline = parse_pipeline(
        """
steps:
  - group: Tests
    key: tests
    steps: [{command: a}, wait, {command: b}]
  - name: Lint
    type: group
    steps: [{command: lint}]
"""
    )
    tests, lint = pipeline.steps
    assert isinstance(tests, GroupStep) and isinstance(lint, GroupStep)
    assert (tests.group, tests.label, tests.key) == ("Tests", "Tests", "tests")
    assert [type(step) for step in tests.steps] == [CommandStep, WaitStep, CommandStep]
    assert (lint.group, lint.label) == ("Lint", "Lint")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("build", [Dependency(key="build")]),
        ("[build, test]", [Dependency(key="build"), Dependency(key="test")]),
        ("[{step: build, allow_failure: true}]", [Dependency(key="build", allow_failure=True)]),
        ("~", []),
        ("[]", []),
    ],
)
def test_depends_on_forms(written, expected):
    step = only_step(f"steps: [{{command: x, depends_on: {written}}}]")
    assert step.depends_on == expected


def test_depends_on_not_given_is_none():
    step = only_step("steps: [{command: x}]")
    assert step.depends_on is None


def test_step_type_key_wins_over_key_presence():
    step = only_step("steps: [{type: script, label: Build, command: make}]")
    assert isinstance(step, CommandStep)


def test_nested_step_forms_are_unwrapped():
    pipeline = parse_pipeline(
        "steps: [{command: {command: make, label: Build}}, {wait: {continue_on_failure: true}}]"
    )
    command, wait = pipeline.steps
    assert isinstance(command, CommandStep) and (command.command, command.label) == (
        "make",
        "Build",
    )
    assert isinstance(wait, WaitStep) and wait.continue_on_failure is True


def test_yaml_words_like_yes_and_dates_stay_strings():
    step = only_step("steps: [{command: x, env: {ANSWER: yes, DAY: 2024-01-02}}]")
    assert isinstance(step, CommandStep)
    assert step.env == {"ANSWER": "yes", "DAY": "2024-01-02"}


def test_yaml_anchors_and_merge_keys_work():
    pipeline = parse_pipeline(
        """
common: &common
  agents: {queue: linux}
  timeout_in_minutes: 5
steps:
  - <<: *common
    command: make
"""
    )
    step = pipeline.steps[0]
    assert isinstance(step, CommandStep)
    assert (step.agents, step.timeout_in_minutes) == ({"queue": "linux"}, 5)


def test_empty_step_list_is_a_valid_pipeline():
    assert parse_pipeline("steps: []").steps == []


def test_parse_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse_pipeline("steps: [{command: x, timeout_in_minutes: 0}]")
    with pytest.raises(PipelineError):
        parse_pipeline("steps: 3")
