"""A followed log's new lines pushed on its live stream (decision 0049): the window route's
answer byte for byte, rendered once per position however many follow from it, and the size
alone (the viewer fetches) when the stream does not know where the follower is or the log grew
too far."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server.test_web_live import create_build, create_pipeline, signed_in, stream
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

RENDERED = "kiteline_web_log_windows_rendered_for_streams_total"


def running_job(server: LiveServer) -> tuple[httpx.Client, ScriptedAgent, dict[str, Any], str]:
    """A signed-in client, the agent running the job, the job, and its log window route."""
    identity = server.identity("acme")
    client = signed_in(server, identity)
    create_pipeline(server, identity, "Hello")
    build = create_build(server, identity, "hello")
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    return client, agent, job, f"/acme/hello/builds/{build['number']}/jobs/{job['id']}/log"


def window(client: httpx.Client, log_url: str, after: int, line: int) -> str:
    answer = client.get(
        log_url, params={"after": after, "line": line}, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def renderings(server: LiveServer) -> float:
    answer = httpx.get(f"{server.url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    return next(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == RENDERED
    )


def test_a_follower_is_pushed_the_windows_the_route_answers(server: LiveServer) -> None:
    client, agent, job, log_url = running_job(server)
    assert agent.log(job, 0, 0, b"--- first\n\x1b[31mred\x1b[0m\n").status_code < 300  # 23
    with stream(client, f"/organizations/acme/live?log={job['id']}&from=0&line=1") as messages:
        first = next(messages)  # what arrived before the viewer followed
        first_fetched = window(client, log_url, 0, 1)  # the route's answer, the log as pushed
        assert agent.log(job, 1, 23, b"second <b>\n").status_code < 300
        second = next(messages)
    assert {key: value for key, value in first.items() if key != "html"} == {
        "event": "log",
        "job_id": job["id"],
        "size": 23,
        "from": 0,
        "to": 23,
        "next_line": 3,
    }
    assert first["html"] == first_fetched
    assert {key: value for key, value in second.items() if key != "html"} == {
        "event": "log",
        "job_id": job["id"],
        "size": 34,
        "from": 23,
        "to": 34,
        "next_line": 4,
    }
    assert second["html"] == window(client, log_url, 23, 3)
    assert 'id="{}-L3"'.format(job["id"]) in second["html"]
    assert "second &lt;b&gt;" in second["html"]


def test_followers_at_one_position_share_one_rendering(server: LiveServer) -> None:
    client, agent, job, log_url = running_job(server)
    other = signed_in(server, server.identity("acme"))
    assert agent.log(job, 0, 0, b"one\n").status_code < 300
    url = f"/organizations/acme/live?log={job['id']}&from=4&line=2"
    with stream(client, url) as messages, stream(other, url) as others:
        # Each is told the size first: nothing past its position, nothing rendered.
        assert next(messages) == {"event": "log", "job_id": job["id"], "size": 4}
        assert next(others) == {"event": "log", "job_id": job["id"], "size": 4}
        before = renderings(server)
        assert agent.log(job, 1, 4, b"two\n").status_code < 300
        pushed, pushed_too = next(messages), next(others)
        after = renderings(server)
    assert after - before == 1
    assert pushed == pushed_too
    assert (pushed["from"], pushed["to"], pushed["next_line"]) == (4, 8, 3)
    assert pushed["html"] == window(client, log_url, 4, 2)


def test_without_a_position_or_past_the_bound_a_follower_is_told_the_size(
    server: LiveServer,
) -> None:
    client, agent, job, log_url = running_job(server)
    assert agent.log(job, 0, 0, b"one\n").status_code < 300
    with (
        stream(client, f"/organizations/acme/live?log={job['id']}") as unplaced,
        stream(client, f"/organizations/acme/live?log={job['id']}&from=4&line=2") as placed,
    ):
        assert next(unplaced) == {"event": "log", "job_id": job["id"], "size": 4}
        assert next(placed) == {"event": "log", "job_id": job["id"], "size": 4}
        # More than the 256 KiB a push may cover: the size only, and from then on the size only
        # (the stream no longer knows where the viewer is once it fetched).
        big = b"".join(b"%07d\n" % n for n in range(40_000))
        assert agent.log(job, 1, 4, big).status_code < 300
        told = 4 + len(big)
        assert next(placed) == {"event": "log", "job_id": job["id"], "size": told}
        assert next(unplaced) == {"event": "log", "job_id": job["id"], "size": told}
        assert agent.log(job, 2, told, b"last\n").status_code < 300
        assert next(placed) == {"event": "log", "job_id": job["id"], "size": told + 5}
        assert next(unplaced) == {"event": "log", "job_id": job["id"], "size": told + 5}
    assert window(client, log_url, 4, 2).count('class="log-line"') > 0
