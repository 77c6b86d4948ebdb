"""Faults, with real processes: `kill -9` of the server while builds run (restarted 5 s and
60 s later), of an agent while its job runs, and of `kiteline worker` while it delivers
webhooks. Nothing is lost: every job ends with its real result and its whole log, a dead
agent's job ends `agent_lost` with its processes killed, every event is delivered.

Intervals are short (settings), so only the 60-second outage takes long. See
docs/reliability.md for what each guarantee is and the figures measured."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_webhooks import (
    PATIENT,
    TWO_STEPS,
    _for_build,
    _outbox,
    _queued_through,
    _subject,
    _until_build_finished,
    _webhook,
)
from tests.support.processes import kill, wait_until
from tests.support.stack import ORG, Stack, stack
from tests.support.webhook_receiver import receiver

LINES = 12


def _counting(seconds: int, *, exit_status: int) -> str:
    """A command that writes a line a second, then `done`, and exits with `exit_status`. Its
    `$` are written `$$`: a pipeline's text is interpolated when the build is made."""
    return (
        f'for i in $$(seq 1 {seconds}); do echo "line $$i"; sleep 1; done; echo done; '
        f"exit {exit_status}"
    )


def _pipeline(seconds: int) -> str:
    return (
        "steps:\n"
        f"  - key: passes\n    command: '{_counting(seconds, exit_status=0)}'\n"
        f"  - key: fails\n    command: '{_counting(seconds, exit_status=3)}'\n"
    )


def _logged(s: Stack, job: dict[str, Any], text: str) -> bool:
    return text in s.client.get(job["raw_log_url"]).text


def _all_running_and_logging(s: Stack, numbers: list[int]) -> bool:
    jobs = [job for number in numbers for job in s.build("outage", number)["jobs"]]
    return all(job["state"] == "running" and _logged(s, job, "line 2\n") for job in jobs)


def _whole_output(s: Stack, job: dict[str, Any], seconds: int) -> tuple[list[str], bool]:
    """The command's own lines in the job's log, and whether every chunk of it arrived."""
    log = s.client.get(job["log_url"]).json()
    lines = [line for line in log["content"].splitlines() if line.startswith(("line ", "done"))]
    return lines, len(log["content"].encode()) == log["size"]


@pytest.mark.parametrize(
    ("outage", "seconds", "sweeps"),
    [
        # Jobs outlast the outage; the server's own sweeps run, with a lost-agent threshold
        # shorter than the outage: the restart must not count its downtime as silence.
        pytest.param(5, LINES, "server", id="restart-after-5s"),
        # Jobs end during the outage and report afterwards; `kiteline worker` sweeps all
        # along, while no server serves the agents.
        pytest.param(60, LINES, "worker", id="restart-after-60s"),
    ],
)
def test_jobs_running_through_a_server_kill_end_with_their_results_and_whole_logs(
    database_url: str, tmp_path: Path, outage: int, seconds: int, sweeps: str
) -> None:
    settings = {
        "agent_heartbeat_interval": "1" if outage == 5 else "2",
        "agent_lost_after_seconds": "4" if outage == 5 else "10",
        "worker_interval_seconds": "0.2",
        "run_workers": "true" if sweeps == "server" else "false",
    }
    with stack(database_url, tmp_path, **settings) as s:
        if sweeps == "worker":
            s.start_worker()
        s.pipeline("Outage", _pipeline(seconds))
        s.start_agent("runner", spawn=4)
        numbers = [s.trigger("outage")["number"] for _ in range(2)]
        wait_until(lambda: _all_running_and_logging(s, numbers), what="every job to log")
        assert s.server is not None
        kill(s.server)
        time.sleep(outage)
        restarted_at = datetime.now(UTC)
        s.start_server()
        builds = [s.finished("outage", number, timeout=300) for number in numbers]
        outputs = [_whole_output(s, job, seconds) for build in builds for job in build["jobs"]]
        agents = s.client.get(f"/v2/organizations/{ORG}/agents").json()
    expected = [f"line {i}" for i in range(1, seconds + 1)] + ["done"]
    assert [build["state"] for build in builds] == ["failed", "failed"]
    for build in builds:
        passes, fails = sorted(build["jobs"], key=lambda job: job["step_key"] != "passes")
        assert (passes["state"], passes["exit_status"]) == ("passed", 0)
        assert (fails["state"], fails["exit_status"], fails["signal_reason"]) == (
            "failed",
            3,
            None,
        )
        if outage == 60:  # ended during the outage: the agent's time, not the report's
            for job in (passes, fails):
                assert datetime.fromisoformat(job["finished_at"]) < restarted_at
    assert outputs == [(expected, True)] * 4
    assert sorted(agent["connection_state"] for agent in agents) == ["connected"] * 4


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_killed_agents_job_ends_agent_lost_and_its_processes_die_with_it(
    database_url: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    # `$$$$` is the shell's `$$` once the pipeline's text is interpolated (as `$$!` is `$!`).
    command = f"echo $$$$ > {pids}/leader; sleep 300 & echo $$! > {pids}/child; echo ready; wait"
    settings = {
        "agent_heartbeat_interval": "1",
        "agent_lost_after_seconds": "3",
        "worker_interval_seconds": "0.2",
    }
    with stack(database_url, tmp_path, **settings) as s:
        s.pipeline("Doomed", f"steps:\n  - command: '{command}'\n")
        victim = s.start_agent("victim", cancel_grace_period="2")
        s.trigger("doomed")
        # Its log reaching the server shows the agent is past starting the job (and telling
        # its watchdog of it): the agent, not the job, is what is killed mid-way.
        wait_until(lambda: _logged(s, s.build("doomed", 1)["jobs"][0], "ready\n"), what="log")
        job_processes = [int((pids / name).read_text()) for name in ("leader", "child")]
        assert not any(_gone(pid) for pid in job_processes)
        kill(victim)  # the agent's process group: its watchdog has a session of its own
        build = s.finished("doomed", 1)
        wait_until(lambda: all(_gone(pid) for pid in job_processes), what="the job's processes")
        agent = s.client.get(f"/v2/organizations/{ORG}/agents/{build['jobs'][0]['agent']['id']}")
    job = build["jobs"][0]
    assert (job["state"], job["exit_status"], job["signal_reason"]) == ("failed", -1, "agent_lost")
    assert agent.json()["connection_state"] == "lost"


def test_a_killed_worker_loses_no_webhook_and_redelivers_the_interrupted_one(
    database_url: str, tmp_path: Path
) -> None:
    arrivals: list[str] = []  # the X-Buildkite-Request of each request, as it arrives
    release = threading.Event()

    def respond(_index: int, headers: dict[str, str], _body: bytes) -> int:
        arrivals.append(headers["x-buildkite-request"])
        release.wait(timeout=120)  # until the worker is dead: its attempt is cut off
        return 200

    settings = {"run_workers": "false", **PATIENT}
    with receiver(respond) as hook, stack(database_url, tmp_path, **settings) as s:
        worker = s.start_worker()
        webhook = _webhook(s.client, hook.url)
        s.pipeline("Two", TWO_STEPS)
        s.start_agent("runner")
        build = s.trigger("two")
        s.finished("two", 1)
        queued = wait_until(
            lambda: _queued_through(s.client, webhook, "build.finished"),
            what="the build's deliveries to be queued",
        )
        wait_until(lambda: len(arrivals) > 0, what="an attempt in flight")
        kill(worker)
        before_kill = list(arrivals)
        release.set()  # the held attempt now "succeeds" on a dead connection
        s.start_worker()
        _until_build_finished(hook, build["id"])
        after_restart = arrivals[len(before_kill) :]
    ping = queued[-1]
    assert ping["event"] == "ping"
    assert set(before_kill) == {ping["id"]}  # the ping held the queue: nothing else was tried
    assert after_restart[0] == ping["id"]  # the attempt the kill cut off, made again
    assert [_subject(p) for p in _for_build(hook, build["id"])] == _outbox(
        database_url, s.data_dir, build["id"]
    )  # nothing lost
