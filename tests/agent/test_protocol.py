"""The agent's conversation with the Agent API: order, headers and bodies of its requests."""

from __future__ import annotations

import os
import re
from datetime import datetime

from kiteline import __version__
from tests.agent.fake_agent_api import REGISTRATION_TOKEN, eventually


async def test_a_job_is_run_with_the_request_sequence_of_buildkite_agent(fake_api, run_jobs):
    assert await run_jobs(fake_api.add_job("echo hello")) == 0

    assert fake_api.sequence() == [
        "register",
        "connect",
        "ping",
        "accept",
        "start",
        "chunks",
        "finish",
        "ping",
        "disconnect",
    ]


async def test_registration_token_is_sent_only_on_register(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello"))

    register, *others = fake_api.requests
    assert register.route == "register"
    assert register.authorization == f"Token {REGISTRATION_TOKEN}"
    assert all(REGISTRATION_TOKEN not in request.authorization for request in others)


async def test_agent_calls_use_the_access_token_and_job_calls_the_job_token(fake_api, run_jobs):
    # Longer than the job-state interval (0.2 s), so the job's state is polled at least once.
    await run_jobs(fake_api.add_job("sleep 0.5; echo hello", token="job-token-xyz"))

    routes = ("connect", "ping", "accept", "start", "state", "chunks", "finish", "disconnect")
    by_route = {
        route: {request.authorization for request in fake_api.calls(route)} for route in routes
    }
    assert by_route == {
        "connect": {"Token access-token-1"},
        "ping": {"Token access-token-1"},
        "accept": {"Token access-token-1"},
        "start": {"Token job-token-xyz"},
        "state": {"Token job-token-xyz"},
        "chunks": {"Token job-token-xyz"},
        "finish": {"Token job-token-xyz"},
        "disconnect": {"Token access-token-1"},
    }


async def test_job_calls_use_the_access_token_when_the_job_has_none(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello", token=""))

    assert {request.authorization for request in fake_api.calls("finish")} == {
        "Token access-token-1"
    }


async def test_register_body_carries_name_tags_and_process_facts(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello"))

    body = fake_api.calls("register")[0].json()
    assert body["name"] == "test-agent"
    assert body["meta_data"] == ["queue=default"]
    assert body["script_eval_enabled"] is True
    assert body["ignore_in_dispatches"] is False
    assert body["version"] == __version__
    assert body["pid"] == os.getpid()
    assert body["features"] == []
    assert body["arch"] in {"amd64", "arm64"}
    assert body["hostname"] and body["os"]


async def test_a_given_queue_tag_is_not_doubled(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello"), tags=("queue=deploy", "os=linux"))

    assert fake_api.calls("register")[0].json()["meta_data"] == ["queue=deploy", "os=linux"]


async def test_requests_identify_the_agent_and_send_json_only_with_a_body(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello"))

    user_agents = {request.headers["user-agent"] for request in fake_api.requests}
    assert len(user_agents) == 1
    assert re.fullmatch(
        rf"kiteline-agent/{re.escape(__version__)} \(linux; (amd64|arm64)\)", *user_agents
    )
    assert "content-type" not in fake_api.calls("accept")[0].headers
    assert fake_api.calls("finish")[0].headers["content-type"] == "application/json"
    chunk = fake_api.calls("chunks")[0]
    assert (chunk.headers["content-type"], chunk.headers["content-encoding"]) == (
        "text/plain",
        "gzip",
    )


async def test_ping_asks_the_server_to_long_poll(fake_api, run_jobs):
    await run_jobs(fake_api.add_job("echo hello"))

    assert {request.query["wait"] for request in fake_api.calls("ping")} == {"10"}


async def test_start_body_and_finish_body_of_a_passing_job(fake_api, run_jobs):
    job = fake_api.add_job("echo hello")
    await run_jobs(job)

    started_at = fake_api.calls("start")[0].json()["started_at"]
    assert started_at.endswith("Z") and "." in started_at
    assert job.finish is not None
    assert set(job.finish) == {"exit_status", "finished_at", "chunks_failed_count"}
    assert job.finish["exit_status"] == "0"
    assert job.finish["chunks_failed_count"] == 0
    assert job.finish["finished_at"].endswith("Z")


async def test_finished_at_is_when_the_job_ended_not_when_its_log_got_through(fake_api, run_jobs):
    job = fake_api.add_job("echo hello")
    fake_api.fail_next("chunks", 503)  # the last of the log waits for a retry
    await run_jobs(job)

    delivered = fake_api.calls("chunks")[-1]
    assert job.finish is not None
    finished_at = datetime.fromisoformat(job.finish["finished_at"].replace("Z", "+00:00"))
    assert finished_at.timestamp() < delivered.received_at_wall
    assert b"".join(chunk.data for chunk in job.chunks).endswith(b"$ echo hello\nhello\n")


async def test_failing_command_finishes_with_its_exit_status_as_a_string(fake_api, run_jobs):
    job = fake_api.add_job("exit 3")
    await run_jobs(job)

    assert job.finish is not None
    assert job.finish["exit_status"] == "3"
    assert "signal" not in job.finish and "signal_reason" not in job.finish


async def test_job_ids_are_escaped_in_paths(fake_api, run_jobs):
    job = fake_api.add_job("true")
    fake_api.jobs["job.with.dots"] = fake_api.jobs.pop(job.id)
    job.id = "job.with.dots"
    await run_jobs(job)

    assert fake_api.calls("accept")[0].raw_path == "/v3/jobs/job%2Ewith%2Edots/accept"
    assert job.finish is not None


async def test_an_accept_error_abandons_the_job_and_pings_again(fake_api, run_jobs):
    fake_api.fail_next("accept", 500)
    job = fake_api.add_job("echo hello")
    await run_jobs(job)

    assert [request.route for request in fake_api.requests][:6] == [
        "register",
        "connect",
        "ping",
        "accept",
        "ping",
        "accept",
    ]
    assert job.finish is not None and job.finish["exit_status"] == "0"


async def test_a_rejected_start_drops_the_job_without_finishing(fake_api, start_agent):
    fake_api.fail_next("start", 422)
    job = fake_api.add_job("echo never")
    agent = start_agent()
    await eventually(lambda: fake_api.sequence()[-2:] == ["start", "ping"])
    await agent.stopped()

    assert fake_api.calls("finish") == []
    assert fake_api.calls("chunks") == []
    assert job.finish is None


async def test_finish_is_retried_after_a_server_error(fake_api, run_jobs):
    fake_api.fail_next("finish", 503)
    job = fake_api.add_job("echo hello")
    await run_jobs(job)

    assert len(fake_api.calls("finish")) == 2
    assert job.finish is not None and job.finish["exit_status"] == "0"


async def test_ping_action_disconnect_stops_the_worker(fake_api, start_agent):
    fake_api.ping_actions.append("disconnect")
    agent = start_agent()

    assert await agent.exit_code() == 0
    assert fake_api.sequence() == ["register", "connect", "ping", "disconnect"]


async def test_ping_action_pause_holds_back_the_offered_job(fake_api, run_jobs):
    fake_api.ping_interval = 0.1
    fake_api.ping_actions.append("pause")
    job = fake_api.add_job("echo hello")
    await run_jobs(job)

    assert [request.route for request in fake_api.requests][:5] == [
        "register",
        "connect",
        "ping",
        "ping",
        "accept",
    ]
    assert job.finish is not None


async def test_a_rejected_ping_stops_the_agent_with_an_error(fake_api, start_agent):
    fake_api.fail_next("ping", 401)
    agent = start_agent()

    assert await agent.exit_code() == 1
    assert fake_api.sequence() == ["register", "connect", "ping", "disconnect"]


async def test_a_failed_ping_is_retried(fake_api, run_jobs):
    fake_api.fail_next("ping", 503)
    job = fake_api.add_job("echo hello")

    assert await run_jobs(job) == 0
    assert len(fake_api.calls("ping")) >= 3


async def test_a_refused_registration_stops_the_agent_with_an_error(fake_api, start_agent):
    agent = start_agent(token="wrong-token")

    assert await agent.exit_code() == 1
    assert fake_api.sequence() == ["register"]


async def test_server_request_headers_are_sent_back_and_exported_to_jobs(fake_api, run_jobs):
    fake_api.request_headers = {"Buildkite-Shard": "7", "X-Ignored": "no"}
    job = fake_api.add_job('echo "shard=$BUILDKITE_REQUEST_HEADER_BUILDKITE_SHARD"')
    await run_jobs(job)

    later = fake_api.requests[1:]
    assert {request.headers.get("buildkite-shard") for request in later} == {"7"}
    assert all("x-ignored" not in request.headers for request in later)
    assert "shard=7" in job.log()


async def test_heartbeats_are_sent_every_heartbeat_interval(fake_api, start_agent):
    fake_api.heartbeat_interval = 0.1
    agent = start_agent()
    await eventually(lambda: len(fake_api.calls("heartbeat")) >= 2)
    await agent.stopped()

    assert set(fake_api.calls("heartbeat")[0].json()) == {"sent_at"}


async def test_a_job_shorter_than_the_state_interval_is_never_polled(fake_api, run_jobs):
    # The job is running when it starts: its state is first asked for one interval later.
    await run_jobs(fake_api.add_job("echo hello"))

    assert fake_api.calls("state") == []
