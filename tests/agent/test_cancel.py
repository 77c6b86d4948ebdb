"""Cancelling jobs: from the server's job state, and by stopping the agent."""

from __future__ import annotations

from pathlib import Path

from tests.agent.fake_agent_api import eventually


def process_is_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_canceling_job_kills_the_command_and_its_children(fake_api, start_agent, tmp_path):
    child_pid = tmp_path / "child.pid"
    job = fake_api.add_job(
        f"sleep 300 & echo $! > {child_pid}.tmp; mv {child_pid}.tmp {child_pid}; wait"
    )
    agent = start_agent()
    await eventually(child_pid.exists)
    pid = int(child_pid.read_text())
    assert not process_is_gone(pid)

    fake_api.set_state(job, "canceling")
    await eventually(lambda: job.finish is not None)
    await agent.stopped()

    assert job.finish is not None
    assert (job.finish["exit_status"], job.finish["signal"], job.finish["signal_reason"]) == (
        "143",
        "SIGTERM",
        "cancel",
    )
    await eventually(lambda: process_is_gone(pid), within=5)
    assert job.state == "canceled"


async def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(
    fake_api, start_agent, tmp_path
):
    ready = tmp_path / "ready"
    job = fake_api.add_job(
        f"trap 'echo trapped TERM' TERM; touch {ready}; while true; do sleep 0.1 || true; done"
    )
    agent = start_agent(cancel_grace_period=0.5)
    await eventually(ready.exists)

    fake_api.set_state(job, "canceling")
    await eventually(lambda: job.finish is not None)
    await agent.stopped()

    assert job.finish is not None
    assert (job.finish["exit_status"], job.finish["signal"], job.finish["signal_reason"]) == (
        "137",
        "SIGKILL",
        "cancel",
    )
    assert "trapped TERM\n" in job.log()


async def test_timing_out_job_is_cancelled(fake_api, start_agent, tmp_path):
    ready = tmp_path / "ready"
    job = fake_api.add_job(f"touch {ready}; sleep 300")
    agent = start_agent()
    await eventually(ready.exists)

    fake_api.set_state(job, "timing_out")
    await eventually(lambda: job.finish is not None)
    await agent.stopped()

    assert job.finish is not None and job.finish["signal_reason"] == "cancel"
    assert job.state == "timed_out"


async def test_a_rejected_job_token_cancels_the_job(fake_api, start_agent):
    fake_api.fail_next("state", 401)
    job = fake_api.add_job("sleep 300")
    agent = start_agent()
    await eventually(lambda: job.finish is not None)
    await agent.stopped()

    assert job.finish is not None and job.finish["signal_reason"] == "cancel"


async def test_graceful_stop_lets_the_running_job_finish_then_disconnects(
    fake_api, start_agent, tmp_path
):
    started = tmp_path / "started"
    job = fake_api.add_job(f"touch {started}; sleep 0.5; echo finished-normally")
    agent = start_agent()
    await eventually(started.exists)

    assert await agent.stopped() == 0

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert "signal_reason" not in job.finish
    assert "finished-normally\n" in job.log()
    assert fake_api.sequence()[-3:] == ["chunks", "finish", "disconnect"]


async def test_a_second_stop_cancels_the_running_job_as_agent_stop(fake_api, start_agent, tmp_path):
    started = tmp_path / "started"
    job = fake_api.add_job(f"touch {started}; sleep 300")
    agent = start_agent()
    await eventually(started.exists)

    agent.pool.stop()
    assert await agent.stopped(force=True) == 0

    assert job.finish is not None
    assert (job.finish["exit_status"], job.finish["signal"], job.finish["signal_reason"]) == (
        "143",
        "SIGTERM",
        "agent_stop",
    )
    assert fake_api.sequence()[-2:] == ["finish", "disconnect"]


async def test_a_job_the_server_closed_meanwhile_is_stopped(fake_api, start_agent, tmp_path):
    # As when the server took the agent for lost and finished the job with -1: its result is
    # no longer wanted, so its processes are not left running.
    child_pid = tmp_path / "child.pid"
    job = fake_api.add_job(
        f"sleep 300 & echo $! > {child_pid}.tmp; mv {child_pid}.tmp {child_pid}; wait"
    )
    agent = start_agent(cancel_grace_period=0.5)
    await eventually(child_pid.exists)
    pid = int(child_pid.read_text())

    fake_api.set_state(job, "finished")
    await eventually(lambda: job.finish is not None)
    await agent.stopped()

    assert job.finish is not None
    assert (job.finish["exit_status"], job.finish["signal_reason"]) == ("143", "cancel")
    await eventually(lambda: process_is_gone(pid), within=5)
