"""The /v3 agent protocol against the real server: dispatch, logs, finish, cancel, build states."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

PIPELINE = """
env:
  GREETING: hello
steps:
  - label: one
    key: one
    command: echo one
    env:
      STEP_VAR: "1"
  - label: two
    command: echo two
  - wait
  - label: last
    command: exit 1
"""


def _setup(server: LiveServer, configuration: str = PIPELINE) -> tuple[Identity, httpx.Client]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    created = client.post(
        "/v2/organizations/acme/pipelines",
        json={"name": "Demo", "configuration": configuration},
    )
    assert created.status_code == 201, created.text
    return identity, client


def _build(client: httpx.Client, number: int = 1) -> dict:
    response = client.get(f"/v2/organizations/acme/pipelines/demo/builds/{number}")
    assert response.status_code == 200
    return response.json()


def _create_build(client: httpx.Client) -> dict:
    response = client.post(
        "/v2/organizations/acme/pipelines/demo/builds",
        json={"commit": "HEAD", "branch": "main", "message": "test"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_register_returns_token_and_positive_intervals(server: LiveServer) -> None:
    identity, _ = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token, name="%hostname-%spawn")
    assert agent.name == "test-host-1"
    assert agent.access_token.startswith("bkaa_")
    response = httpx.post(
        f"{server.url}/v3/register",
        json={"name": "x"},
        headers={"Authorization": f"Token {identity.agent_token}"},
    )
    body = response.json()
    assert body["ping_interval"] > 0 and body["heartbeat_interval"] > 0


def test_register_with_bad_token_is_401(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/v3/register", json={"name": "x"}, headers={"Authorization": "Token nope"}
    )
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid agent registration token"}


def test_ping_without_work_answers_idle(server: LiveServer) -> None:
    identity, _ = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    assert agent.ping() == {"action": "idle"}


def test_accepted_job_carries_env_token_and_chunk_size(server: LiveServer) -> None:
    identity, client = _setup(server)
    build = _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert job["id"] == build["jobs"][0]["id"]
    assert job["state"] == "accepted"
    assert job["chunks_max_size_bytes"] > 0
    assert job["token"].startswith("bkaj_")
    env = job["env"]
    assert env["BUILDKITE_COMMAND"] == "echo one"
    assert env["BUILDKITE_JOB_ID"] == job["id"]
    assert env["BUILDKITE_BUILD_NUMBER"] == "1"
    assert env["BUILDKITE_BRANCH"] == "main"
    assert env["BUILDKITE_PIPELINE_SLUG"] == "demo"
    assert env["BUILDKITE_ORGANIZATION_SLUG"] == "acme"
    assert env["BUILDKITE_AGENT_NAME"] == agent.name
    assert env["BUILDKITE_AGENT_META_DATA_QUEUE"] == "default"
    assert env["BUILDKITE_PULL_REQUEST"] == "false"
    assert env["GREETING"] == "hello"
    assert env["STEP_VAR"] == "1"


def test_a_build_runs_through_its_states(server: LiveServer) -> None:
    identity, client = _setup(server)
    build = _create_build(client)
    assert build["state"] == "scheduled"
    assert [job["state"] for job in build["jobs"]] == [
        "scheduled",
        "scheduled",
        "waiting",
        "waiting",
    ]
    agent = ScriptedAgent.register(server.url, identity.agent_token)

    first = agent.take_job()
    assert _build(client)["state"] == "running"
    assert agent.finish(first, "0").status_code == 200
    second = agent.take_job()
    assert agent.finish(second, "0").status_code == 200
    last = agent.take_job()
    assert last["env"]["BUILDKITE_COMMAND"] == "exit 1"
    assert agent.finish(last, "1").status_code == 200

    finished = _build(client)
    assert finished["state"] == "failed"
    assert [job["state"] for job in finished["jobs"]] == ["passed", "passed", "passed", "failed"]
    assert [job.get("exit_status") for job in finished["jobs"]] == [0, 0, None, 1]
    assert finished["job_state_counts"] == {"total": 4, "states": {"failed": 1, "passed": 3}}
    assert finished["started_at"] is not None and finished["finished_at"] is not None


def test_a_failure_before_a_wait_stops_the_steps_after_it(server: LiveServer) -> None:
    identity, client = _setup(
        server, "steps:\n  - command: exit 3\n  - wait\n  - command: echo never\n"
    )
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    agent.finish(agent.take_job(), "3")
    build = _build(client)
    assert build["state"] == "failed"
    assert [job["state"] for job in build["jobs"]] == ["failed", "waiting_failed", "waiting_failed"]
    assert agent.ping() == {"action": "idle"}


def test_log_chunks_out_of_order_read_back_in_place(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    url = f"/v2/organizations/acme/pipelines/demo/builds/1/jobs/{job['id']}/log"
    assert agent.log(job, 2, 6, b"world\n").status_code == 201
    # While the job runs, text past a gap waits for the gap: it would move later otherwise.
    assert (client.get(url).json()["content"], client.get(url + ".txt").text) == ("", "")
    assert agent.log(job, 1, 0, b"hello ").status_code == 201
    assert agent.log(job, 1, 0, b"hello ").status_code == 201  # a retried upload is a no-op
    body = client.get(url).json()
    assert body["content"] == "hello world\n"
    assert body["size"] == 12
    text = client.get(url + ".txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "hello world\n"


def test_a_finished_jobs_log_keeps_the_text_past_a_chunk_that_never_came(
    server: LiveServer,
) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert agent.log(job, 1, 0, b"one\n").status_code == 201
    assert agent.log(job, 3, 8, b"three\n").status_code == 201  # sequence 2 is lost
    url = f"/v2/organizations/acme/pipelines/demo/builds/1/jobs/{job['id']}/log"
    assert client.get(url).json()["content"] == "one\n"
    assert agent.finish(job, "0", chunks_failed_count=1).status_code == 200
    assert client.get(url).json()["content"] == "one\nthree\n"


def test_a_finished_job_refuses_further_chunks_as_buildkite_does(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert agent.log(job, 1, 0, b"done\n").status_code == 201
    assert agent.finish(job, "0").status_code == 200
    late = agent.log(job, 2, 5, b"too late\n")
    assert late.status_code == 400
    assert late.json() == {"message": "Job can't have chunks: its state is finished"}
    url = f"/v2/organizations/acme/pipelines/demo/builds/1/jobs/{job['id']}/log"
    assert client.get(url + ".txt").text == "done\n"


def test_finished_at_is_the_agents_finish_time_within_the_servers_clock(
    server: LiveServer,
) -> None:
    identity, client = _setup(server, "steps:\n  - command: a\n  - command: b\n  - command: c\n")
    _create_build(client)
    agents = [ScriptedAgent.register(server.url, identity.agent_token) for _ in range(3)]
    jobs = [agent.take_job(started_at="2026-11-29T10:00:00Z") for agent in agents]
    reported = ["2026-11-29T10:00:20.5Z", "2026-11-29T09:00:00Z", "2999-01-01T00:00:00Z"]
    before = datetime.now(UTC)
    for agent, job, finished_at in zip(agents, jobs, reported, strict=True):
        assert agent.finish(job, "0", finished_at=finished_at).status_code == 200
    after = datetime.now(UTC)
    stored = {job["id"]: job["finished_at"] for job in _build(client)["jobs"]}
    as_reported, before_start, in_the_future = (stored[job["id"]] for job in jobs)
    assert as_reported == "2026-11-29T10:00:20.500Z"
    assert before_start == "2026-11-29T10:00:00.000Z"  # not before the job started
    server_time = datetime.fromisoformat(in_the_future.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= server_time <= after  # not in the future


def test_finish_takes_exit_status_as_string(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    response = agent.finish(job, "not-a-number")
    assert response.status_code == 400
    assert "exit_status" in response.json()["message"]
    assert agent.finish(job, "-1", signal="SIGKILL", signal_reason="agent_stop").status_code == 200
    rest_job = _build(client)["jobs"][0]
    assert (rest_job["exit_status"], rest_job["signal"], rest_job["signal_reason"]) == (
        -1,
        "SIGKILL",
        "agent_stop",
    )


def test_job_calls_with_another_agents_token_are_refused(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    owner = ScriptedAgent.register(server.url, identity.agent_token)
    other = ScriptedAgent.register(server.url, identity.agent_token)
    job = owner.take_job()
    assert other.call("GET", f"/jobs/{job['id']}").status_code == 404
    assert other.call("GET", f"/jobs/{job['id']}", token="bkaj_wrong").status_code == 401
    assert owner.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"] == "running"


def test_job_calls_take_the_owning_agents_access_token_too(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    state = agent.call("GET", f"/jobs/{job['id']}")  # the access token: the agent is seen
    assert state.status_code == 200
    assert state.json() == {"id": job["id"], "state": "running"}
    assert agent.call("POST", f"/jobs/{job['id']}/header_times", json={}).json() == {}


def test_accepting_a_job_twice_is_422(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    again = agent.call("PUT", f"/jobs/{job['id']}/accept")
    assert again.status_code == 422


def test_cancel_reaches_the_agent_through_the_job_state(server: LiveServer) -> None:
    identity, client = _setup(server)
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    canceled = client.put("/v2/organizations/acme/pipelines/demo/builds/1/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["state"] == "canceling"
    state = agent.call("GET", f"/jobs/{job['id']}", token=job["token"]).json()["state"]
    assert state == "canceling"
    agent.finish(job, "143", signal="SIGTERM", signal_reason="cancel")
    build = _build(client)
    assert build["state"] == "canceled"
    assert [j["state"] for j in build["jobs"]] == ["canceled", "canceled", "canceled", "canceled"]
    again = client.put("/v2/organizations/acme/pipelines/demo/builds/1/cancel")
    assert again.status_code == 422
    assert again.json() == {"message": "Build can't be canceled because it's canceled"}


def _running_build_and_a_second_agent(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent]:
    """A build whose first job is running on one agent, and another agent to take the next."""
    identity, client = _setup(server)
    _create_build(client)
    first_agent = ScriptedAgent.register(server.url, identity.agent_token)
    first_agent.take_job(started_at="2026-11-29T10:00:00Z")
    assert _build(client)["state"] == "running"
    return client, ScriptedAgent.register(server.url, identity.agent_token)


def test_a_job_starts_on_its_own_in_a_build_already_running(server: LiveServer) -> None:
    client, second_agent = _running_build_and_a_second_agent(server)
    second = second_agent.take_job(started_at="2026-11-29T10:00:05.25Z")
    build = _build(client)
    assert build["state"] == "running"
    assert [job["state"] for job in build["jobs"]] == ["running", "running", "waiting", "waiting"]
    assert build["jobs"][1]["started_at"] == "2026-11-29T10:00:05.250Z"
    state = second_agent.call("GET", f"/jobs/{second['id']}", token=second["token"])
    assert state.json() == {"id": second["id"], "state": "running"}


def test_accept_start_and_finish_repeated_by_the_agent_answer_as_the_first_time(
    server: LiveServer,
) -> None:
    # As when a server is killed after committing a call and before answering it: the agent
    # retries, and must not drop (or strand) the job for a refusal.
    identity, client = _setup(server, "steps:\n  - command: a\n")
    _create_build(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job_id = agent.ping()["job"]["id"]
    first = agent.call("PUT", f"/jobs/{job_id}/accept")
    again = agent.call("PUT", f"/jobs/{job_id}/accept")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["state"] == "accepted"
    token = again.json()["token"]
    assert token != first.json()["token"]  # the one the agent got replaces the lost one
    lost_token = agent.call("GET", f"/jobs/{job_id}", token=first.json()["token"])
    assert lost_token.status_code == 401
    for _ in range(2):
        started = agent.call(
            "PUT", f"/jobs/{job_id}/start", token=token, json={"started_at": "2026-11-29T10:00:00Z"}
        )
        assert started.json() == {"id": job_id, "state": "running"}
    for _ in range(2):
        finished = agent.call(
            "PUT", f"/jobs/{job_id}/finish", token=token, json={"exit_status": "0"}
        )
        assert finished.json() == {"id": job_id, "state": "finished"}
    other = agent.call("PUT", f"/jobs/{job_id}/finish", token=token, json={"exit_status": "1"})
    assert other.status_code == 422
    assert other.json() == {"message": "Job can't be finished: its state is finished"}
    build = _build(client)
    assert (build["state"], build["jobs"][0]["started_at"]) == (
        "passed",
        "2026-11-29T10:00:00.000Z",
    )


def test_a_job_canceled_between_accept_and_start_is_not_started(server: LiveServer) -> None:
    client, second_agent = _running_build_and_a_second_agent(server)
    assigned = second_agent.ping()["job"]
    accepted = second_agent.call("PUT", f"/jobs/{assigned['id']}/accept").json()
    assert client.put("/v2/organizations/acme/pipelines/demo/builds/1/cancel").status_code == 200

    started = second_agent.call(
        "PUT", f"/jobs/{accepted['id']}/start", token=accepted["token"], json={}
    )
    assert started.status_code == 422
    assert started.json() == {"message": "Job can't be started: its state is canceling"}
    build = _build(client)
    assert build["state"] == "canceling"
    assert [job["state"] for job in build["jobs"]] == [
        "canceling",
        "canceling",
        "canceled",
        "canceled",
    ]
    assert build["jobs"][1]["started_at"] is None


def test_agents_only_get_jobs_their_tags_match(server: LiveServer) -> None:
    identity, client = _setup(
        server, "steps:\n  - command: echo mac\n    agents:\n      queue: mac\n"
    )
    _create_build(client)
    linux = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=linux"])
    mac = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=mac"])
    assert linux.ping() == {"action": "idle"}
    assert "job" in mac.ping()


def test_a_waiting_ping_is_woken_when_a_build_is_created(server: LiveServer) -> None:
    identity, client = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    result: dict = {}

    def long_poll() -> None:
        result["ping"] = agent.ping(wait=15)

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.3)  # let the ping start waiting; correctness does not depend on it
    build = _create_build(client)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert result["ping"]["job"]["id"] == build["jobs"][0]["id"]
