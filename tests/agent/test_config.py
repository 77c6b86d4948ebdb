"""Agent configuration: endpoint, tags and worker names."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiteline.agent.config import AgentConfig, agent_api_endpoint, parse_tags


@pytest.mark.parametrize(
    ("base", "endpoint"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v3"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v3"),
        ("https://ci.example.com/v3", "https://ci.example.com/v3"),
        ("https://ci.example.com/kiteline/", "https://ci.example.com/kiteline/v3"),
    ],
)
def test_the_agent_api_endpoint_is_the_base_url_plus_v3(base: str, endpoint: str) -> None:
    assert agent_api_endpoint(base) == endpoint


def test_tags_are_comma_separated_key_value_pairs() -> None:
    assert parse_tags("queue=default, os=linux,,") == ("queue=default", "os=linux")


def test_a_tag_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError) as missing:
        parse_tags("queue=default,linux")
    assert str(missing.value) == "expected KEY=VALUE, got 'linux': no '='"
    with pytest.raises(ValueError) as keyless:
        parse_tags("=linux")
    assert str(keyless.value) == "expected KEY=VALUE, got '=linux': no KEY before '='"


def config(name: str, spawn: int) -> AgentConfig:
    return AgentConfig(
        endpoint="", token="", build_path=Path("/b"), name=name, spawn=spawn, hostname="box"
    )


@pytest.mark.parametrize(
    ("name", "spawn", "names"),
    [
        ("ci", 1, ["ci"]),
        ("ci", 2, ["ci-1", "ci-2"]),
        ("ci-%spawn-x", 2, ["ci-1-x", "ci-2-x"]),
        ("%hostname-%spawn", 1, ["box-1"]),
    ],
)
def test_worker_names_follow_buildkite_agent(name: str, spawn: int, names: list[str]) -> None:
    assert [config(name, spawn).worker_name(index) for index in range(1, spawn + 1)] == names
