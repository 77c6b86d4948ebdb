"""Buildkite's `if` language: operators, precedence, regexes, includes, env() and errors."""

import pytest

from kiteline.pipeline import (
    ConditionContext,
    PipelineError,
    evaluate_condition,
    validate_condition,
)

CONTEXT = ConditionContext(
    variables={
        "build.branch": "feature/login",
        "build.message": "Fix login [skip tests]",
        "build.number": 42,
        "build.tag": None,
        "build.pull_request.labels": ["ready", "backend"],
        "build.pull_request.draft": False,
        "pipeline.slug": "web",
    },
    env={"DEPLOY": "yes", "EMPTY": ""},
)


def holds(expression: str) -> bool:
    return evaluate_condition(expression, CONTEXT)


def error_of(expression: str) -> str:
    with pytest.raises(PipelineError) as caught:
        evaluate_condition(expression, CONTEXT)
    return str(caught.value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('build.branch == "feature/login"', True),
        ("build.branch == 'main'", False),
        ('build.branch != "main"', True),
        ("build.number == 42", True),
        ('build.number == "42"', False),
        ("build.tag == null", True),
        ("build.tag != null", False),
        ("true", True),
        ("false", False),
        ("null", False),
    ],
)
def test_comparisons_and_literals(expression, expected):
    assert holds(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("build.branch =~ /^feature\\//", True),
        ("build.branch =~ /^main$/", False),
        ("build.branch !~ /^main$/", True),
        ("build.message =~ /\\[SKIP TESTS\\]/i", True),
        ("build.message =~ /\\[SKIP TESTS\\]/", False),
        ("build.number =~ /^4/", True),
        ("build.tag =~ /v1/", False),
        ("build.tag !~ /v1/", True),
    ],
)
def test_regex_matching(expression, expected):
    assert holds(expression) is expected


def test_includes_checks_list_membership():
    assert holds('build.pull_request.labels includes "ready"') is True
    assert holds('build.pull_request.labels includes "frontend"') is False


def test_includes_on_a_missing_list_is_false():
    assert holds('build.author.teams includes "deploy"') is False


def test_and_binds_tighter_than_or():
    assert holds("true || false && false") is True
    assert holds("(true || false) && false") is False


def test_not_binds_tighter_than_comparison():
    # (!build.pull_request.draft) == true
    assert holds("!build.pull_request.draft == true") is True
    assert holds('!(build.branch == "main")') is True


def test_not_of_null_is_true():
    assert holds("!build.tag") is True


def test_logical_operators_short_circuit_past_errors():
    assert holds('true || build.branch includes "x"') is True
    assert holds('false && build.branch includes "x"') is False


def test_build_env_returns_value_or_null():
    assert holds('build.env("DEPLOY") == "yes"') is True
    assert holds('build.env("MISSING") == null') is True
    assert holds('build.env("EMPTY") == ""') is True


def test_env_function_returns_empty_string_when_unset():
    assert holds('env("MISSING") == ""') is True


def test_comments_and_multiple_lines_are_allowed():
    expression = """
        // only feature branches
        build.branch =~ /^feature\\// && // and not skipped
          build.message !~ /skip deploy/
    """
    assert holds(expression) is True


def test_single_and_double_quoted_strings_support_escapes():
    context = ConditionContext(variables={"build.message": 'it\'s "quoted"'})
    assert evaluate_condition("build.message == 'it\\'s \"quoted\"'", context) is True


def test_missing_known_variable_is_null():
    assert holds("build.creator.email == null") is True


def test_boolean_does_not_equal_integer():
    context = ConditionContext(variables={"build.pull_request.draft": True})
    assert evaluate_condition("build.pull_request.draft == 1", context) is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("build.branch ==", "condition ends too early: expected a value at line 1, column 16"),
        ('(build.branch == "x"', 'expected ")" but found end of condition at line 1, column 21'),
        ('build.branch == "x")', 'unexpected ")" at line 1, column 20'),
        ("build.brnch == 'x'", "unknown variable build.brnch at line 1, column 1"),
        ("build.nope('x')", "unknown function build.nope() at line 1, column 1"),
        ("build.env()", "build.env() needs one argument at line 1, column 11"),
        ("build.env('A', 'B')", "build.env() takes only one argument at line 1, column 14"),
        ("build.branch == 'x", "string starting with ' is never closed at line 1, column 17"),
        ("build.branch =~ 'main'", "expected a /regex/ after =~ at line 1, column 17"),
        ("/main/ == build.branch", "a /regex/ can only follow =~ or !~ at line 1, column 1"),
        ("build.branch =~ /main", "/regex/ is never closed at line 1, column 17"),
        (
            "build.branch =~ /main/g",
            "unsupported regex flag 'g' (only i is allowed) at line 1, column 17",
        ),
        (
            "build.branch =~ /(/",
            "invalid regular expression (missing ), unterminated subpattern at position 0)"
            " at line 1, column 17",
        ),
        ("build.branch = 'x'", "unexpected character '=' at line 1, column 14"),
        ("", "condition is empty at line 1, column 1"),
        ("true\n  && ", "condition ends too early: expected a value at line 2, column 6"),
    ],
)
def test_invalid_conditions_say_what_and_where(expression, message):
    with pytest.raises(PipelineError) as caught:
        validate_condition(expression)
    assert str(caught.value) == f"invalid condition: {message}"


def test_validate_accepts_every_documented_example():
    for expression in [
        'build.branch == "main" || build.branch == "production"',
        "build.tag =~ /^v[0-9]+\\.0$/",
        'build.env("BUILDKITE_TAG") =~ /^v[0-9]+\\.0$/',
        "build.message !~ /\\[skip tests\\]/i",
        'build.source == "schedule"',
        'build.creator.teams includes "deploy"',
        "!build.pull_request.draft",
        'build.env("DOCKER_PASSWORD") != null',
        'pipeline.default_branch == build.branch && organization.slug != "x"',
    ]:
        validate_condition(expression)


def test_includes_on_a_non_list_is_an_evaluation_error():
    assert error_of('build.branch includes "x"') == (
        "invalid condition: includes needs a list on its left, not a string at line 1, column 14"
    )


def test_non_boolean_result_is_an_error():
    assert error_of("build.branch") == ("condition must evaluate to true or false, not a string")
