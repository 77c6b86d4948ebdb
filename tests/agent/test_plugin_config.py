"""Plugin configuration as environment variables, named as buildkite-agent v3 names them. The
expectations are buildkite-agent v3's (agent/plugin/plugin_test.go,
TestConfigurationToEnvironment) for a plugin named docker-compose."""

from __future__ import annotations

import pytest

from kiteline.agent.plugin_config import (
    ConfigurationError,
    configuration_env,
    dump_json,
    load_json,
)
from kiteline.agent.plugin_source import parse_plugins


def env_for(configuration_json: str) -> dict[str, str]:
    source = "github.com/buildkite-plugins/docker-compose-buildkite-plugin"
    (plugin,) = parse_plugins(f'[{{"{source}": {configuration_json}}}]')
    return configuration_env(plugin.name, plugin.configuration).variables


@pytest.mark.parametrize(
    ("configuration", "variables"),
    [
        (
            '{ "config-key": 42 }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": '{"config-key":42}',
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_CONFIG_KEY": "42",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            '{ "container": "app", "some-other-setting": "else right here" }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": (
                    '{"container":"app","some-other-setting":"else right here"}'
                ),
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_CONTAINER": "app",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_SOME_OTHER_SETTING": "else right here",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            '{ "and _ with a    - number": 12, "A - B": 13 }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": '{"A - B":13,"and _ with a    - number":12}',
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_AND_WITH_A_NUMBER": "12",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_AND___WITH_A______NUMBER": "12",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_A_B": "13",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_A___B": "13",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            '{ "bool-true-key": true, "bool-false-key": false }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": '{"bool-false-key":false,"bool-true-key":true}',
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_BOOL_FALSE_KEY": "false",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_BOOL_TRUE_KEY": "true",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            '{ "array-key": [ 42, 43, "foo" ] }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": '{"array-key":[42,43,"foo"]}',
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_0": "42",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_1": "43",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_2": "foo",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            '{ "array-key": [ { "subkey": [1, 2, "llamas"] } ] }',
            {
                "BUILDKITE_PLUGIN_CONFIGURATION": '{"array-key":[{"subkey":[1,2,"llamas"]}]}',
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_0_SUBKEY_0": "1",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_0_SUBKEY_1": "2",
                "BUILDKITE_PLUGIN_DOCKER_COMPOSE_ARRAY_KEY_0_SUBKEY_2": "llamas",
                "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
            },
        ),
        (
            "null",
            {"BUILDKITE_PLUGIN_CONFIGURATION": "{}", "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE"},
        ),
    ],
)
def test_configuration_variables_match_buildkite_agent(
    configuration: str, variables: dict[str, str]
) -> None:
    assert env_for(configuration) == variables


def test_collapsed_names_are_reported_as_deprecated() -> None:
    environment = configuration_env("docker-compose", {"A - B": "13", "x": "1"})
    assert environment.deprecated == [
        ("BUILDKITE_PLUGIN_DOCKER_COMPOSE_A_B", "BUILDKITE_PLUGIN_DOCKER_COMPOSE_A___B")
    ]


def test_nested_maps_add_their_keys() -> None:
    assert env_for('{"build": {"image-name": "app", "args": {"NODE": "20"}}}') == {
        "BUILDKITE_PLUGIN_CONFIGURATION": '{"build":{"args":{"NODE":"20"},"image-name":"app"}}',
        "BUILDKITE_PLUGIN_DOCKER_COMPOSE_BUILD_IMAGE_NAME": "app",
        "BUILDKITE_PLUGIN_DOCKER_COMPOSE_BUILD_ARGS_NODE": "20",
        "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
    }


def test_numbers_are_written_as_the_pipeline_wrote_them() -> None:
    assert env_for('{"ratio": 1.50, "big": 12345678901234567890, "exp": 1e3}') == {
        "BUILDKITE_PLUGIN_CONFIGURATION": '{"big":12345678901234567890,"exp":1e3,"ratio":1.50}',
        "BUILDKITE_PLUGIN_DOCKER_COMPOSE_RATIO": "1.50",
        "BUILDKITE_PLUGIN_DOCKER_COMPOSE_BIG": "12345678901234567890",
        "BUILDKITE_PLUGIN_DOCKER_COMPOSE_EXP": "1e3",
        "BUILDKITE_PLUGIN_NAME": "DOCKER_COMPOSE",
    }


def test_a_null_value_gives_no_variables() -> None:
    (plugin,) = parse_plugins('[{"docker-compose#v5": {"run": "app", "env": null}}]')
    with pytest.raises(ConfigurationError, match=r"unknown type <nil> <nil>"):
        configuration_env(plugin.name, plugin.configuration)


def test_configuration_json_is_encoded_as_go_encodes_it() -> None:
    value = load_json('{"b": "<a & b>", "a": ["é", "\\u2028", "tab\\there", true, null]}')
    assert dump_json(value) == (
        '{"a":["é","\\u2028","tab\\there",true,null],"b":"\\u003ca \\u0026 b\\u003e"}'
    )
