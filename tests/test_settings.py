"""Settings that would make Kiteline misbehave are refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from kiteline.settings import Settings, describe_settings_error
from tests.support.processes import kiteline_env


def test_a_lost_threshold_of_two_heartbeats_is_accepted() -> None:
    settings = Settings(agent_heartbeat_interval=30, agent_lost_after_seconds=60)
    assert settings.agent_lost_after_seconds == 60


def test_a_lost_threshold_shorter_than_two_heartbeats_is_refused_in_one_line() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(agent_heartbeat_interval=30, agent_lost_after_seconds=59)
    assert describe_settings_error(refused.value) == (
        "invalid configuration: KITELINE_AGENT_LOST_AFTER_SECONDS (59) must be at least 60: "
        "2 times KITELINE_AGENT_HEARTBEAT_INTERVAL (30), so that a live agent whose heartbeat "
        "is late or lost once is not declared lost"
    )


def test_the_server_refuses_to_start_with_a_lost_threshold_under_the_heartbeats(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "kiteline", "server", "--port", "1"],
        env=kiteline_env(tmp_path / "data", KITELINE_AGENT_LOST_AFTER_SECONDS="10"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == (
        "kiteline: invalid configuration: KITELINE_AGENT_LOST_AFTER_SECONDS (10) must be at "
        "least 60: 2 times KITELINE_AGENT_HEARTBEAT_INTERVAL (30), so that a live agent whose "
        "heartbeat is late or lost once is not declared lost\n"
    )
    assert not (tmp_path / "data").exists()  # refused before anything was created
