"""The watchdog kills the job process groups it was told of once the agent's pipe closes
(the agent gone, however it went), and leaves alone the groups that ended or were forgotten."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiteline.agent.watchdog import Watchdog
from tests.agent.test_cancel import process_is_gone


def _until(check: Callable[[], object], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _group(groups: list[subprocess.Popen[bytes]], script: str) -> subprocess.Popen[bytes]:
    """A job-like process group: a shell leader and a child it started."""
    process = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    groups.append(process)
    return process


def test_watched_groups_are_killed_when_the_agents_end_of_the_pipe_closes(
    groups: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    watchdog = Watchdog.start(grace_period=1)
    child = tmp_path / "child"
    # SIGTERM is ignored by the whole group (the child inherits that): SIGKILL ends it.
    stubborn = _group(groups, f"trap '' TERM; sleep 300 & echo $! > {child}; wait")
    _until(lambda: child.exists() and child.read_text().strip())
    ended = _group(groups, "exit 0")
    forgotten = _group(groups, "sleep 300")
    for process in (stubborn, ended, forgotten):
        watchdog.watch(process.pid)
    ended.wait()
    watchdog.forget(ended.pid)
    watchdog.forget(forgotten.pid)

    watchdog.close()  # what the kernel does for an agent that was SIGKILLed

    _until(lambda: stubborn.poll() is not None)
    assert stubborn.returncode == -9  # SIGKILL after the grace period
    _until(lambda: process_is_gone(int(child.read_text())))  # the leader's child with it
    assert forgotten.poll() is None  # not the watchdog's any more
    assert process_is_gone(watchdog.pid)
