"""Invalid pipelines: every issue is collected and names the step and the key."""

import pytest

from kiteline.pipeline import PipelineError, PipelineIssue, check_pipeline, parse_pipeline


def issues_of(source) -> list[PipelineIssue]:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(source)
    return caught.value.issues


def only_issue(source) -> PipelineIssue:
    issues = issues_of(source)
    assert len(issues) == 1, issues
    return issues[0]


def test_error_sentence_names_the_step_by_number_and_key():
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(
            "steps: [{command: a}, {command: b}, {key: build, command: c, timeout_in_minutes: 0}]"
        )
    assert str(caught.value) == 'Step 3 ("build"): timeout_in_minutes must be a positive integer'
    assert caught.value.issues == [
        PipelineIssue(
            path='steps[2] (key "build").timeout_in_minutes',
            message="timeout_in_minutes must be a positive integer",
            where='Step 3 ("build")',
        )
    ]


def test_all_issues_are_collected_not_just_the_first():
    issues = issues_of(
        """
steps:
  - {command: a, parallelism: -2}
  - {label: Lint, command: b, retry: {automatic: {limit: 11}}}
  - {trigger: ""}
"""
    )
    assert [str(issue) for issue in issues] == [
        "Step 1: parallelism must be a positive integer",
        'Step 2 ("Lint"): retry.automatic.limit must be an integer from 0 to 10',
        "Step 3: trigger must not be empty",
    ]
    assert issues[1].path == 'steps[1] (label "Lint").retry.automatic.limit'


def test_invalid_yaml_is_one_issue_with_line_and_column():
    issue = only_issue("steps:\n  - command: make\n   bad: indent\n")
    assert issue.message == (
        # libyaml's words, which go-yaml (buildkite-agent's parser, a port of it) shares
        "Pipeline is not valid YAML at line 3, column 4: did not find expected '-' indicator"
    )


def test_missing_steps_is_an_issue():
    assert str(only_issue("env: {A: b}")) == "steps is required"


def test_document_that_is_not_a_map_or_list_is_an_issue():
    assert only_issue("just words").message == (
        "Pipeline must be a map with steps, or a list of steps"
    )


def test_unknown_step_shape_names_the_step():
    issue = only_issue("steps: [{command: a}, {label: Mystery, agents: {queue: x}}]")
    assert str(issue) == (
        'Step 2 ("Mystery"): has none of the keys that make a step '
        "(command, wait, block, input, trigger or group)"
    )
    assert issue.path == 'steps[1] (label "Mystery")'


def test_unknown_scalar_step_and_unknown_type_are_issues():
    issues = issues_of("steps: [sleep, {type: deploy}]")
    assert [str(issue) for issue in issues] == [
        'Step 1: "sleep" is not a step; a step written as a string must be wait, block or input',
        'Step 2: type "deploy" is not a step type; '
        "expected command, wait, block, input, trigger or group",
    ]


def test_duplicate_keys_across_the_pipeline_and_groups_are_an_issue():
    issue = only_issue(
        "steps: [{key: build, command: a}, {group: G, steps: [{key: build, command: b}]}]"
    )
    assert str(issue) == ('Step 2.1 ("build"): key "build" is already the key of step 1 ("build")')
    assert issue.path == 'steps[1] (label "G").steps[0] (key "build").key'


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("has space", "key may only contain letters, digits and _ - : $ { } . ,"),
        ("a" * 101, "key must be at most 100 characters"),
        ("0b1e3d6c-9a8f-4e1e-8f3a-2b5c7d9e1f00", "key must not look like a UUID"),
    ],
)
def test_invalid_keys(key, message):
    assert only_issue({"steps": [{"key": key, "command": "x"}]}).message == message


def test_key_with_interpolation_characters_is_valid():
    step = parse_pipeline({"steps": [{"key": "build-${ARCH}:v1.0,x", "command": "x"}]}).steps[0]
    assert step.key == "build-${ARCH}:v1.0,x"


def test_alias_key_issue_names_the_alias():
    assert only_issue("steps: [{id: 'bad key', command: x}]").path == 'steps[0] (key "bad key").id'


def test_concurrency_and_concurrency_group_need_each_other():
    issues = issues_of("steps: [{command: a, concurrency: 1}, {command: b, concurrency_group: g}]")
    assert [str(issue) for issue in issues] == [
        "Step 1: concurrency needs concurrency_group as well",
        "Step 2: concurrency_group needs concurrency as well",
    ]


def test_if_and_branches_cannot_be_combined():
    issue = only_issue("steps: [{command: a, if: build.tag != null, branches: main}]")
    assert issue.message == "if can't be used together with branches"


def test_invalid_if_expression_is_reported_with_its_position():
    issue = only_issue("steps: [{command: a, if: 'build.branch == '}]")
    assert issue.path == "steps[0].if"
    assert issue.message == (
        "if is not a valid condition: condition ends too early: expected a value "
        "at line 1, column 17"
    )


def test_unknown_variable_in_if_is_an_issue():
    issue = only_issue("steps: [{command: a, if: build.brnch == 'main'}]")
    assert issue.message == (
        "if is not a valid condition: unknown variable build.brnch at line 1, column 1"
    )


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "{command: a, soft_fail: sometimes}",
            'soft_fail must be true, false or a list of {exit_status: <int or "*">}',
        ),
        (
            "{command: a, soft_fail: [{exit_status: x}]}",
            'soft_fail[0].exit_status must be an integer or "*"',
        ),
        (
            "{command: a, cancel_on_build_failing: maybe}",
            "cancel_on_build_failing must be true or false",
        ),
        ("{command: a, env: [A=b]}", "env must be a map of names to values"),
        ("{command: a, env: {A: [1]}}", "env.A must be a string, number or boolean"),
        ("{command: a, agents: [queue]}", 'agents[0] must look like "name=value"'),
        ("{command: [a, [b]]}", "command must be a string or a list of strings"),
        ("{command: a, commands: b}", "commands can't be used together with command"),
        (
            "{command: a, plugins: [{a: 1, b: 2}]}",
            'plugins[0] must be "name#version" or {"name#version": config}',
        ),
        (
            "{command: a, concurrency_method: random, concurrency: 1, concurrency_group: g}",
            'concurrency_method must be one of "ordered", "eager"',
        ),
        (
            "{command: a, retry: {automatic: {exit_status: x}}}",
            'retry.automatic.exit_status must be "*", an integer or a list of integers',
        ),
        (
            "{command: a, retry: {automatic: {signal_reason: bored}}}",
            "retry.automatic.signal_reason must be one of *, none, agent_incompatible, "
            "agent_refused, agent_stop, cancel, process_run_error, signature_rejected, stack_error",
        ),
        (
            "{command: a, retry: {automatic: sometimes}}",
            "retry.automatic must be true, false, a rule or a list of rules",
        ),
        ("{command: a, retry: []}", "retry must be a map"),
        (
            "{command: a, depends_on: [{allow_failure: true}]}",
            "depends_on[0] must be a step key or {step: <key>, allow_failure: <bool>}",
        ),
        (
            "{command: a, allow_dependency_failure: 2}",
            "allow_dependency_failure must be true or false",
        ),
        (
            "{command: a, notify: [email]}",
            "notify[0] must be a map such as {slack: ...}, or github_check or github_commit_status",
        ),
        ("{command: a, label: [x]}", "label must be a string"),
    ],
)
def test_command_step_validation_messages(step, message):
    assert only_issue(f"steps: [{step}]").message == message


def test_skip_reason_longer_than_70_characters_is_an_issue():
    issue = only_issue({"steps": [{"command": "a", "skip": "x" * 71}]})
    assert issue.message == "skip reason must be at most 70 characters"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{block: B, fields: [{text: Name}]}", "fields[0].key is required"),
        (
            "{block: B, fields: [{text: Name, key: 'a b'}]}",
            "fields[0].key may only contain letters, digits, - and _",
        ),
        (
            "{block: B, fields: [{text: A, key: k}, {text: B, key: k}]}",
            'fields[1].key "k" is already used by another field of this step',
        ),
        (
            "{block: B, fields: [{select: S, key: k, options: []}]}",
            "fields[0].options must be a list of at least one {label, value}",
        ),
        (
            "{block: B, fields: [{select: S, key: k, options: [{label: L}]}]}",
            "fields[0].options[0].value is required",
        ),
        (
            "{block: B, fields: [{select: S, key: k, default: z,"
            " options: [{label: L, value: v}]}]}",
            'fields[0].default "z" is not the value of any option',
        ),
        (
            "{block: B, fields: [{select: S, key: k, default: [v],"
            " options: [{label: L, value: v}]}]}",
            "fields[0].default can only be a list when multiple is true",
        ),
        (
            "{block: B, fields: [{text: T, key: k, format: '('}]}",
            "fields[0].format is not a valid regular expression"
            " (missing ), unterminated subpattern at position 0)",
        ),
        (
            "{block: B, blocked_state: paused}",
            'blocked_state must be one of "passed", "failed", "running"',
        ),
        ("{block: B, fields: text}", "fields must be a list of text and select fields"),
    ],
)
def test_block_step_validation_messages(step, message):
    assert only_issue(f"steps: [{step}]").message == message


def test_trigger_step_needs_a_pipeline_slug():
    assert only_issue("steps: [{type: trigger, label: Deploy}]").message == "trigger is required"


def test_group_steps_must_not_be_empty_or_nested():
    issues = issues_of(
        "steps: [{group: A, steps: []}, {group: B, steps: [{group: C, steps: [{command: x}]}]}]"
    )
    assert [str(issue) for issue in issues] == [
        'Step 1 ("A"): steps must contain at least one step',
        'Step 2.1 ("C"): groups can\'t be nested inside another group',
    ]


def test_group_needs_steps():
    assert str(only_issue("steps: [{group: A}]")) == 'Step 1 ("A"): steps is required'


def test_top_level_values_are_validated_too():
    issues = issues_of("priority: high\nenv: [A]\nsteps: [wait]")
    assert [issue.path for issue in issues] == ["env", "priority"]
    assert [issue.message for issue in issues] == [
        "env must be a map of names to values",
        "priority must be an integer",
    ]


def test_a_key_written_twice_in_one_step_is_an_issue():
    issue = only_issue("steps:\n  - command: a\n    command: b\n")
    assert issue.message == (
        "Pipeline is not valid YAML at line 3, column 5: "
        'key "command" appears twice in the same map'
    )


def test_invalid_if_in_a_notification_is_an_issue():
    issue = only_issue("notify: [{email: a@b.c, if: build.state ==}]\nsteps: [wait]")
    assert issue.path == "notify[0].if"


def test_a_map_without_step_keys_suggests_the_one_it_almost_has():
    issue = only_issue("steps:\n  - commandd: make\n")
    assert str(issue) == (
        "Step 1: has none of the keys that make a step "
        '(command, wait, block, input, trigger or group); did you mean "command"?'
    )


def test_a_misspelt_step_key_is_refused_with_the_key_it_almost_is():
    issue = only_issue("steps:\n  - command: make\n    key: build\n    timeout_in_minute: 5\n")
    assert str(issue) == (
        'Step 1 ("build"): "timeout_in_minute" is not a key of a command step; '
        'did you mean "timeout_in_minutes"?'
    )
    assert issue.path == 'steps[0] (key "build").timeout_in_minute'


def test_an_unknown_key_unlike_any_known_one_is_kept():
    [step] = parse_pipeline("steps: [{command: make, x_team_note: flaky on mondays}]").steps
    assert step.raw["x_team_note"] == "flaky on mondays"


def test_check_pipeline_refuses_depends_on_a_key_no_step_has_with_the_nearest_one():
    with pytest.raises(PipelineError) as caught:
        check_pipeline(
            "steps:\n  - command: make\n    key: tests\n"
            "  - label: deploy\n    command: ship\n    depends_on: test\n"
        )
    assert str(caught.value) == (
        'Step 2 ("deploy"): depends_on names "test", but no step has that key; '
        'did you mean "tests"?'
    )


def test_check_pipeline_refuses_steps_that_wait_for_each_other():
    with pytest.raises(PipelineError, match="depends_on makes steps wait for each other"):
        check_pipeline(
            "steps: [{key: a, command: x, depends_on: b}, {key: b, command: y, depends_on: a}]"
        )
