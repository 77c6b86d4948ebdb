"""`$VAR` interpolation as the agent applies it to an uploaded pipeline, and the server to a
pipeline's saved steps when a build is created."""

import pytest

from kiteline.pipeline import PipelineError, interpolate, interpolate_pipeline

ENV = {"NAME": "kiteline", "EMPTY": "", "BRANCH": "feature/login"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello $NAME", "hello kiteline"),
        ("hello ${NAME}!", "hello kiteline!"),
        ("$MISSING|", "|"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${MISSING-fallback}", "fallback"),
        ("${NAME:-fallback}", "kiteline"),
        ("${MISSING:-${NAME}-x}", "kiteline-x"),
        ("${MISSING:-${ALSO_MISSING:-deep}}", "deep"),
        ("${NAME:0:4}", "kite"),
        ("${NAME:4}", "line"),
        ("${NAME: -4}", "line"),
        ("${NAME:2:-2}", "teli"),
        ("${NAME:20}", ""),
        ("${BRANCH#*/}", "login"),
        ("${BRANCH%/*}", "feature"),
        ("${NAME##*e}", ""),
        ("${NAME%%e*}", "kit"),
    ],
)
def test_expansions(text, expected):
    assert interpolate(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("costs $$5", "costs $5"),
        ("costs \\$5", "costs $5"),
        ("echo $$NAME", "echo $NAME"),
        ("echo $(date)", "echo $(date)"),
        ("ends with $", "ends with $"),
        ("back\\\\slash", "back\\\\slash"),
        ("regex /feature$$/", "regex /feature$/"),
        ("price $5", "price $5"),
        ("sleep 9 & echo $! > pid; exit $?", "sleep 9 & echo $! > pid; exit $?"),
        ('for a in "$@"; do :; done', 'for a in "$@"; do :; done'),
    ],
)
def test_escapes_and_literals(text, expected):
    assert interpolate(text, ENV) == expected


def test_required_variable_that_is_set_passes_through():
    assert interpolate("${NAME:?must be set}", ENV) == "kiteline"


def test_required_variable_error_names_the_variable_and_message():
    with pytest.raises(PipelineError) as caught:
        interpolate("deploy ${TARGET:?choose a target}", ENV)
    assert str(caught.value) == "$TARGET: choose a target"


def test_colon_question_treats_empty_as_missing_but_question_alone_does_not():
    with pytest.raises(PipelineError, match=r"^\$EMPTY: is not set or empty$"):
        interpolate("${EMPTY:?}", ENV)
    assert interpolate("${EMPTY?}", ENV) == ""
    with pytest.raises(PipelineError, match=r"^\$MISSING: is not set$"):
        interpolate("${MISSING?}", ENV)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "${NAME",
            "Interpolation failed at character 7: "
            "expected } or an operator such as :- after the name, found the end",
        ),
        ("${NAME:-x", "Interpolation failed at character 10: expected } to close ${NAME"),
        (
            "${NAME:x}",
            "Interpolation failed at character 9: "
            "expected a number in a substring expansion, found 'x'",
        ),
        (
            "${NAME+x}",
            "Interpolation failed at character 7: "
            "expected } or an operator such as :- after the name, found '+'",
        ),
    ],
)
def test_malformed_expansions_say_where(text, message):
    with pytest.raises(PipelineError) as caught:
        interpolate(text, ENV)
    assert str(caught.value) == message


def test_pipeline_uses_its_own_env_block_in_order():
    text = """env:
  REGION: eu
  BUCKET: "artifacts-${REGION}"
steps:
  - command: "upload $BUCKET by $USER"
"""
    assert interpolate_pipeline(text, {"USER": "ci"}) == {
        "env": {"REGION": "eu", "BUCKET": "artifacts-eu"},
        "steps": [{"command": "upload artifacts-eu by ci"}],
    }


def test_pipeline_env_block_wins_over_the_job_env():
    text = "env: {STAGE: prod}\nsteps: [{command: echo $STAGE}]\n"
    assert interpolate_pipeline(text, {"STAGE": "dev"})["steps"] == [{"command": "echo prod"}]


def test_pipeline_without_env_block_uses_the_given_env():
    assert interpolate_pipeline("- command: echo $NAME\n", ENV) == [{"command": "echo kiteline"}]


def test_map_keys_are_interpolated_too():
    document = {"steps": [{"command": "x", "env": {"${NAME}_HOME": "/opt/$NAME"}}]}
    assert interpolate_pipeline(document, ENV) == {
        "steps": [{"command": "x", "env": {"kiteline_HOME": "/opt/kiteline"}}]
    }


def test_values_cannot_break_the_yaml_and_comments_are_not_read():
    text = '# costs $5, see ${DOCS\nsteps:\n  - command: echo "$MESSAGE"\n'
    message = "fix: quote\n  - command: rm -rf /"
    assert interpolate_pipeline(text, {"MESSAGE": message}) == {
        "steps": [{"command": f'echo "{message}"'}]
    }


def test_numbers_and_booleans_in_the_env_block_become_text():
    text = "env: {PORT: 8080, DEBUG: true}\nsteps: [{command: serve $PORT $DEBUG}]\n"
    assert interpolate_pipeline(text, {}) == {
        "env": {"PORT": "8080", "DEBUG": "true"},
        "steps": [{"command": "serve 8080 true"}],
    }


def test_pipeline_text_that_is_not_yaml_is_a_pipeline_error():
    with pytest.raises(PipelineError, match="not valid YAML"):
        interpolate_pipeline("steps: [unclosed\n", ENV)
