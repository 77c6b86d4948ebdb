"""`--spawn N`: N agents registered separately, running jobs at the same time."""

from __future__ import annotations

from tests.agent.fake_agent_api import eventually


def wait_for_peer(mine: str, theirs: str) -> str:
    """A command that passes only if the other job runs while this one does."""
    return (
        f"touch {mine}; for i in $(seq 400); do [ -e {theirs} ] && exit 0; sleep 0.05; done; exit 1"
    )


async def test_spawned_agents_register_separately_with_numbered_names(fake_api, start_agent):
    agent = start_agent(name="ci", spawn=3)
    await eventually(lambda: len(fake_api.calls("connect")) == 3)
    assert await agent.stopped() == 0

    names = sorted(request.json()["name"] for request in fake_api.calls("register"))
    assert names == ["ci-1", "ci-2", "ci-3"]
    assert {request.authorization for request in fake_api.calls("connect")} == {
        "Token access-token-1",
        "Token access-token-2",
        "Token access-token-3",
    }
    assert len(fake_api.calls("disconnect")) == 3


async def test_spawned_agents_run_jobs_concurrently(fake_api, run_jobs, tmp_path):
    first = fake_api.add_job(wait_for_peer(tmp_path / "a", tmp_path / "b"))
    second = fake_api.add_job(wait_for_peer(tmp_path / "b", tmp_path / "a"))
    await run_jobs(first, second, spawn=2)

    assert first.finish is not None and second.finish is not None
    assert (first.finish["exit_status"], second.finish["exit_status"]) == ("0", "0")
    assert first.agent_token != second.agent_token
    started = {request.job_id: request.received_at for request in fake_api.calls("start")}
    finished = {request.job_id: request.received_at for request in fake_api.calls("finish")}
    assert started[first.id] < finished[second.id]
    assert started[second.id] < finished[first.id]
