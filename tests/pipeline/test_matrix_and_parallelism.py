"""Command steps → jobs: plain steps, matrices with adjustments, and parallelism."""

import pytest

from kiteline.pipeline import (
    CommandStep,
    JobSpec,
    Matrix,
    PipelineError,
    expand_command_step,
    parse_pipeline,
)


def command_step(yaml_text: str) -> CommandStep:
    step = parse_pipeline(yaml_text).steps[0]
    assert isinstance(step, CommandStep)
    return step


def issue_messages(yaml_text: str) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(yaml_text)
    return [issue.message for issue in caught.value.issues]


def test_plain_step_is_one_job():
    step = command_step(
        "steps: [{label: Build, command: make, env: {A: b}, agents: {queue: q}, plugins: [p#v1]}]"
    )
    assert expand_command_step(step) == [
        JobSpec(
            label="Build",
            command="make",
            env={"A": "b"},
            agents={"queue": "q"},
            plugins=[{"p#v1": None}],
        )
    ]


def test_single_list_matrix_fills_matrix_placeholders_everywhere():
    step = command_step(
        """
steps:
  - label: "{{matrix}} build"
    command: "GOOS={{ matrix }} go build"
    env: {OS: "{{matrix}}"}
    agents: {queue: "builder-{{matrix}}"}
    plugins: [{docker#v5: {image: "golang-{{matrix}}"}}]
    matrix: [darwin, linux]
"""
    )
    jobs = expand_command_step(step)
    assert [job.label for job in jobs] == ["darwin build", "linux build"]
    assert [job.command for job in jobs] == ["GOOS=darwin go build", "GOOS=linux go build"]
    assert jobs[1].env == {"OS": "linux"}
    assert jobs[1].agents == {"queue": "builder-linux"}
    assert jobs[1].plugins == [{"docker#v5": {"image": "golang-linux"}}]
    assert [job.matrix for job in jobs] == [{"": "darwin"}, {"": "linux"}]


def test_matrix_setup_makes_every_combination_in_order():
    step = command_step(
        """
steps:
  - command: "echo {{matrix.os}} {{matrix.arch}}"
    matrix:
      setup:
        os: [linux, windows]
        arch: [amd64, arm64]
"""
    )
    assert [job.command for job in expand_command_step(step)] == [
        "echo linux amd64",
        "echo linux arm64",
        "echo windows amd64",
        "echo windows arm64",
    ]


def test_matrix_values_may_be_numbers_and_booleans():
    step = command_step("steps: [{command: 'v{{matrix}}', matrix: [3, true]}]")
    assert [job.command for job in expand_command_step(step)] == ["v3", "vtrue"]


def test_adjustments_skip_soft_fail_and_add_combinations():
    step = command_step(
        """
steps:
  - command: "echo {{matrix.os}} {{matrix.arch}}"
    soft_fail: false
    matrix:
      setup:
        os: [linux, windows]
        arch: [amd64, arm64]
      adjustments:
        - with: {os: windows, arch: arm64}
          skip: true
        - with: {os: linux, arch: arm64}
          soft_fail: true
        - with: {os: plan9, arch: arm64}
        - with: {os: windows}
          skip: "no windows runners"
"""
    )
    jobs = expand_command_step(step)
    assert [(job.matrix, job.skip, job.soft_fail) for job in jobs] == [
        ({"os": "linux", "arch": "amd64"}, False, False),
        ({"os": "linux", "arch": "arm64"}, False, True),
        ({"os": "windows", "arch": "amd64"}, "no windows runners", False),
        ({"os": "windows", "arch": "arm64"}, "no windows runners", False),
        ({"os": "plan9", "arch": "arm64"}, False, False),
    ]


def test_single_list_setup_adjustment_adds_and_skips():
    step = command_step(
        """
steps:
  - command: "echo {{matrix}}"
    matrix:
      setup: [one, two]
      adjustments:
        - {with: [two], skip: true}
        - {with: three, soft_fail: [{exit_status: 3}]}
"""
    )
    jobs = expand_command_step(step)
    assert [(job.command, job.skip, job.soft_fail) for job in jobs] == [
        ("echo one", False, False),
        ("echo two", True, False),
        ("echo three", False, [3]),
    ]


def test_step_skip_applies_to_every_matrix_job():
    step = command_step("steps: [{command: x, skip: true, matrix: [a, b]}]")
    assert [job.skip for job in expand_command_step(step)] == [True, True]


def test_parallelism_makes_indexed_copies():
    step = command_step("steps: [{label: Tests, command: rspec, parallelism: 3}]")
    jobs = expand_command_step(step)
    assert [(job.parallel_job, job.parallel_job_count) for job in jobs] == [(0, 3), (1, 3), (2, 3)]
    assert {job.command for job in jobs} == {"rspec"}
    assert all(job.matrix is None for job in jobs)


def test_parallel_label_placeholders_are_the_index_from_0_and_1_and_the_total():
    step = command_step('steps: [{label: "Test %n: %N of %t", command: x, parallelism: 3}]')
    assert [job.label for job in expand_command_step(step)] == [
        "Test 0: 1 of 3",
        "Test 1: 2 of 3",
        "Test 2: 3 of 3",
    ]


def test_no_parallelism_means_no_parallel_index():
    [job] = expand_command_step(command_step("steps: [{command: x}]"))
    assert (job.parallel_job, job.parallel_job_count) == (None, None)


def test_matrix_with_parallelism_is_invalid():
    assert issue_messages("steps: [{command: x, parallelism: 2, matrix: [a]}]") == [
        "matrix can't be used together with parallelism"
    ]
    with pytest.raises(PipelineError, match="matrix and parallelism"):
        expand_command_step(
            CommandStep(command="x", parallelism=2, matrix=Matrix(setup={"": ["a"]}))
        )


def test_placeholder_for_an_unknown_dimension_is_an_issue():
    assert issue_messages(
        "steps: [{command: 'echo {{matrix.os}} {{matrix}}', matrix: {setup: {arch: [x]}}}]"
    ) == ["matrix has no dimension for {{matrix}}", "matrix has no dimension for {{matrix.os}}"]


def test_adding_a_combination_needs_every_dimension():
    assert issue_messages(
        """
steps:
  - command: "{{matrix.os}} {{matrix.arch}}"
    matrix:
      setup: {os: [linux], arch: [amd64]}
      adjustments: [{with: {os: bsd}}]
"""
    ) == ["matrix.adjustments[0].with must name every dimension (os, arch) to add a combination"]


def test_adjustment_naming_an_unknown_dimension_is_an_issue():
    assert issue_messages(
        "steps: [{command: '{{matrix.os}}',"
        " matrix: {setup: {os: [a]}, adjustments: [{with: {cpu: x}}]}}]"
    ) == ["matrix.adjustments[0].with.cpu is not a dimension of the matrix (os)"]


def test_matrix_limits_are_enforced():
    too_many_jobs = {"a": list(range(8)), "b": list(range(7))}
    messages = issue_messages({"steps": [{"command": "x", "matrix": {"setup": too_many_jobs}}]})
    assert messages == ["matrix makes 56 jobs; at most 50 are allowed"]
    long_dimension = {"steps": [{"command": "x", "matrix": list(range(21))}]}
    assert issue_messages(long_dimension) == ["matrix may have at most 20 values"]


def test_matrix_setup_must_be_a_list_or_map():
    assert issue_messages("steps: [{command: x, matrix: {setup: 3}}]") == [
        "matrix.setup must be a list of values or a map of dimensions to lists of values"
    ]
