"""Webhook delivery to a real HTTP receiver: signatures in the three modes, retries with the
same request id, giving up, disabling, redelivery, filters, agent events, the state a payload
announces, and two replicas sharing the work."""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from kiteline.client.webhooks import verify_webhook_request
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.urls import Urls
from kiteline.server.webhooks import fanout
from kiteline.server.webhooks.delivery import public_base_url
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer
from tests.support.processes import wait_until
from tests.support.seed import verify_webhook
from tests.support.webhook_receiver import receiver

SERVICES = "/v2/organizations/acme/services"
PIPELINES = "/v2/organizations/acme/pipelines"
#: Quick retries, quick rounds: the tests wait for outcomes, never for a clock.
FAST = {
    "webhook_poll_interval_seconds": 0.05,
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "webhook_timeout_seconds": 2.0,
}


class World:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.identity: Identity = server.identity("acme")
        self.client = server.client(self.identity.api_token)

    def webhook(self, url: str, **fields: Any) -> dict[str, Any]:
        settings = {"url": url, **fields.pop("settings", {})}
        response = self.client.post(
            SERVICES, json={"provider": "webhook", "settings": settings, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def pipeline(self, name: str, configuration: str = "steps:\n  - command: echo hi\n") -> str:
        response = self.client.post(PIPELINES, json={"name": name, "configuration": configuration})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def build(self, slug: str, branch: str = "main") -> dict[str, Any]:
        response = self.client.post(
            f"{PIPELINES}/{slug}/builds", json={"commit": "HEAD", "branch": branch}
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def run_one_job(self) -> None:
        ScriptedAgent.register(self.server.url, self.identity.agent_token).pass_a_job()

    def deliveries(self, webhook: dict[str, Any], **params: str) -> list[dict[str, Any]]:
        answer = self.client.get(webhook["deliveries_url"], params={"per_page": 100, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]  # type: ignore[no-any-return]

    def settled(self, webhook: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """The webhook's deliveries, oldest first, once `count` exist and none is pending."""
        return wait_until(
            lambda: (
                list(reversed(found))
                if len(found := self.deliveries(webhook)) >= count
                and all(d["state"] != "pending" for d in found)
                else None
            ),
            what=f"{count} settled deliveries",
        )


@pytest.fixture
def world(make_server: Callable[..., LiveServer]) -> World:
    return World(make_server(**FAST))


def test_the_default_signature_passes_the_seeds_verify_webhook(world: World) -> None:
    world.pipeline("P")
    with receiver() as hook:
        webhook = world.webhook(hook.url)
        world.build("p")
        got = hook.wait_for_accepted(3)  # ping, build.scheduled, job.scheduled
    token = webhook["settings"]["token"]
    assert [r.event for r in got] == ["ping", "build.scheduled", "job.scheduled"]
    for request in got:
        assert verify_webhook(request.body, request.headers["x-buildkite-signature"], token)
        assert not verify_webhook(request.body, request.headers["x-buildkite-signature"], "x")
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Buildkite-Request"
        assert request.json()["event"] == request.event
        assert "x-buildkite-token" not in request.headers


def test_the_timestamped_mode_is_buildkites_signature(world: World) -> None:
    with receiver() as hook:
        webhook = world.webhook(hook.url, settings={"token_mode": "signature"})
        (ping,) = hook.wait_for_accepted(1)
    header = ping.headers["x-buildkite-signature"]
    assert re.fullmatch(r"timestamp=\d+,signature=[0-9a-f]{64}", header)
    timestamp = header.split(",")[0].split("=")[1]
    expected = hmac.new(
        webhook["settings"]["token"].encode(), f"{timestamp}.".encode() + ping.body, "sha256"
    ).hexdigest()
    assert header.endswith(f"signature={expected}")
    token = webhook["settings"]["token"]
    assert verify_webhook_request(ping.body, ping.headers, token, mode="signature") == "signature"


def test_the_token_mode_sends_the_token(world: World) -> None:
    with receiver() as hook:
        world.webhook(hook.url, settings={"token_mode": "token", "token": "plain-t0ken"})
        (ping,) = hook.wait_for_accepted(1)
    assert ping.headers["x-buildkite-token"] == "plain-t0ken"
    assert "x-buildkite-signature" not in ping.headers
    assert verify_webhook_request(ping.body, ping.headers, "plain-t0ken") == "token"


def test_the_ping_names_the_service_organization_and_sender(world: World) -> None:
    with receiver() as hook:
        webhook = world.webhook(hook.url)
        (ping,) = hook.wait_for_accepted(1)
    body = ping.json()
    assert list(body) == ["event", "service", "organization", "sender"]
    assert body["service"] == {
        "id": webhook["id"],
        "provider": "webhook",
        "settings": {"url": hook.url},
    }
    assert body["organization"]["slug"] == "acme"
    assert body["sender"] == {"id": webhook["created_by"]["id"], "name": "Test User"}


def test_5xx_answers_are_retried_with_the_same_request_id_and_order_kept(world: World) -> None:
    world.pipeline("P")
    with receiver(lambda index, _h, _b: 500 if index < 3 else 200) as hook:
        webhook = world.webhook(hook.url, settings={"events": ["build.scheduled"]})
        world.build("p")
        world.build("p")
        settled = world.settled(webhook, 3)
        requests = list(hook.requests)
    assert [r.status for r in requests] == [500, 500, 500, 200, 200, 200]
    assert len({r.request_id for r in requests[:4]}) == 1
    assert [(r.event, r.request_id) for r in requests[3:]] == [
        (d["event"], d["id"]) for d in settled
    ]
    assert [r.json()["build"]["number"] for r in requests[4:]] == [1, 2]
    ping = settled[0]
    assert (ping["state"], ping["attempts_count"]) == ("succeeded", 4)
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in ping["attempts"]] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert ping["attempts"][3]["response_excerpt"] == '{"received": 3}'


def test_a_4xx_answer_fails_the_delivery_at_once(make_server: Callable[..., LiveServer]) -> None:
    # A long lease (twice the timeout and 5 s): under a loaded CI a stall past FAST's 9 s
    # lease let the delivery be sent again (at least once, by design) and the retry's 200 won.
    world = World(make_server(**(FAST | {"webhook_timeout_seconds": 30.0})))
    with receiver(lambda index, _h, _b: 410 if index == 0 else 200) as hook:
        webhook = world.webhook(hook.url)
        (failed,) = world.settled(webhook, 1)
        assert failed["state"] == "failed"
        assert [(a["status_code"], a["succeeded"]) for a in failed["attempts"]] == [(410, False)]
        pinged = world.client.post(webhook["ping_url"])
        assert pinged.status_code == 201
        assert (pinged.json()["event"], pinged.json()["state"]) == ("ping", "pending")
        assert [d["state"] for d in world.settled(webhook, 2)] == ["failed", "succeeded"]


def test_a_delivery_gives_up_after_the_configured_attempts(
    make_server: Callable[..., LiveServer],
) -> None:
    world = World(make_server(**FAST, webhook_max_attempts=3))
    with receiver(lambda _i, _h, _b: 503) as hook:
        webhook = world.webhook(hook.url)
        (failed,) = world.settled(webhook, 1)
    assert (failed["state"], failed["attempts_count"]) == ("failed", 3)
    assert [a["status_code"] for a in failed["attempts"]] == [503, 503, 503]
    assert failed["next_attempt_at"] is None


def test_unreachable_receivers_are_retried_and_the_error_recorded(
    make_server: Callable[..., LiveServer],
) -> None:
    world = World(make_server(**FAST, webhook_max_attempts=2))
    webhook = world.webhook("http://127.0.0.1:9/nobody-listens")
    (failed,) = world.settled(webhook, 1)
    assert failed["attempts_count"] == 2
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in failed["attempts"])


def test_a_receiver_slower_than_the_timeout_gets_a_retry(
    make_server: Callable[..., LiveServer],
) -> None:
    world = World(make_server(**(FAST | {"webhook_timeout_seconds": 0.5})))
    release = threading.Event()

    def respond(index: int, _headers: dict[str, str], _body: bytes) -> int:
        if index == 0:
            release.wait(timeout=30)
        return 200

    with receiver(respond) as hook:
        webhook = world.webhook(hook.url)
        (ping,) = world.settled(webhook, 1)
        release.set()
    # On a loaded machine a later answer can miss the half second too: every attempt but the
    # last timed out, and the last succeeded.
    *timed_out, last = ping["attempts"]
    assert timed_out
    assert [(a["status_code"], a["error"]) for a in timed_out] == [
        (None, "no complete answer within 0.5s")
    ] * len(timed_out)
    assert (last["status_code"], last["succeeded"]) == (200, True)


def test_a_webhook_that_keeps_failing_is_disabled_and_enabling_resumes_it(
    make_server: Callable[..., LiveServer],
) -> None:
    world = World(make_server(**FAST, webhook_disable_after_failures=3))
    with receiver(lambda index, _h, _b: 500 if index < 3 else 200) as hook:
        webhook = world.webhook(hook.url)
        disabled = wait_until(
            lambda: (w := world.client.get(webhook["url"]).json())["enabled"] is False and w,
            what="the webhook to be disabled",
        )
        assert disabled["consecutive_failures"] == 3
        assert disabled["disabled_reason"] == (
            "Disabled after 3 consecutive failed attempts (the last: HTTP 500); "
            "enable it to resume its pending deliveries"
        )
        (pending,) = world.deliveries(webhook)
        assert (pending["state"], pending["attempts_count"]) == ("pending", 3)
        enabled = world.client.put(webhook["url"] + "/enable").json()
        assert (enabled["enabled"], enabled["consecutive_failures"]) == (True, 0)
        (ping,) = world.settled(webhook, 1)
    assert (ping["state"], ping["attempts_count"]) == ("succeeded", 4)


def test_redelivery_sends_the_same_body_as_a_new_request(world: World) -> None:
    with receiver() as hook:
        webhook = world.webhook(hook.url)
        (ping,) = world.settled(webhook, 1)
        response = world.client.post(ping["redeliver_url"])
        assert response.status_code == 201
        again = response.json()
        assert (again["event"], again["redelivery_of"], again["state"]) == (
            "ping",
            ping["id"],
            "pending",
        )
        assert again["id"] != ping["id"]
        first, second = hook.wait_for_accepted(2)
    assert first.body == second.body
    assert (first.request_id, second.request_id) == (ping["id"], again["id"])


def test_a_pending_delivery_cannot_be_redelivered(world: World) -> None:
    webhook = world.webhook("http://127.0.0.1:9/nobody-listens")
    world.client.put(webhook["url"] + "/disable")
    pending = world.client.post(webhook["ping_url"]).json()
    response = world.client.post(pending["redeliver_url"])
    assert response.status_code == 422
    assert response.json() == {
        "message": "This delivery is still pending; it will be retried on its own"
    }


def test_deliveries_are_listed_newest_first_in_cursor_pages(world: World) -> None:
    with receiver() as hook:
        webhook = world.webhook(hook.url)
        for _ in range(2):
            world.client.post(webhook["ping_url"])
        oldest_first = world.settled(webhook, 3)
    page = world.client.get(webhook["deliveries_url"], params={"per_page": 2}).json()
    assert [d["id"] for d in page["items"]] == [d["id"] for d in oldest_first[:0:-1]]
    rest = world.client.get(page["links"]["next"]).json()
    assert [d["id"] for d in rest["items"]] == [oldest_first[0]["id"]]
    assert "next" not in rest["links"]
    failed = world.client.get(webhook["deliveries_url"], params={"state": "failed"}).json()
    assert failed["items"] == []


def test_event_pipeline_and_branch_filters_choose_what_is_sent(world: World) -> None:
    wanted = world.pipeline("Wanted")
    world.pipeline("Other")
    with receiver() as hook:
        webhook = world.webhook(
            hook.url,
            scope="some_projects",
            scope_uuids=[wanted],
            branch_configuration="main release/*",
            settings={"events": ["build.finished"]},
        )
        for slug, branch in (
            ("other", "main"),
            ("wanted", "feature"),
            ("wanted", "release/1"),
        ):
            build = world.build(slug, branch)
            world.client.put(f"{PIPELINES}/{slug}/builds/{build['number']}/cancel")
        (_ping, finished) = world.settled(webhook, 2)
        time_to_see_more = world.build("wanted", "main")
        world.client.put(f"{PIPELINES}/wanted/builds/{time_to_see_more['number']}/cancel")
        *_, last = world.settled(webhook, 3)
        received = [r.json() for r in hook.accepted()]
    assert finished["payload"]["build"]["branch"] == "release/1"
    assert last["payload"]["build"]["branch"] == "main"
    assert [(p["event"], p.get("build", {}).get("state")) for p in received] == [
        ("ping", None),
        ("build.finished", "canceled"),
        ("build.finished", "canceled"),
    ]


def test_events_from_before_the_webhook_existed_are_not_sent(world: World) -> None:
    world.pipeline("P")
    world.build("p")
    with receiver() as hook:
        webhook = world.webhook(hook.url)
        world.client.put(f"{PIPELINES}/p/builds/1/cancel")
        events = [d["event"] for d in world.settled(webhook, 3)]
    assert events == ["ping", "job.finished", "build.finished"]


def test_agents_events_carry_the_connection_state_they_announce(world: World) -> None:
    with receiver() as hook:
        webhook = world.webhook(hook.url, settings={"events": ["agent.connected"]})
        world.client.patch(
            webhook["url"],
            json={
                "settings": {
                    "events": [
                        "agent.connected",
                        "agent.disconnected",
                        "agent.stopping",
                        "agent.stopped",
                    ]
                }
            },
        )
        leaving = ScriptedAgent.register(world.server.url, world.identity.agent_token, name="a")
        leaving.call("POST", "/disconnect").raise_for_status()
        stopped = ScriptedAgent.register(world.server.url, world.identity.agent_token, name="b")
        agents = "/v2/organizations/acme/agents"
        world.client.put(f"{agents}/{stopped.id}/stop", json={"force": False})
        stopped.call("POST", "/disconnect").raise_for_status()
        settled = world.settled(webhook, 7)
    shown = [
        (d["event"], d["payload"]["agent"]["name"], d["payload"]["agent"]["connection_state"])
        for d in settled
        if d["event"].startswith("agent.")
    ]
    assert shown == [
        ("agent.connected", "a", "connected"),
        ("agent.disconnected", "a", "disconnected"),
        ("agent.connected", "b", "connected"),
        ("agent.stopping", "b", "stopping"),
        ("agent.stopped", "b", "stopped"),
    ]
    assert [d["event"] for d in settled[:2]] == ["ping", "ping"]  # created, then updated


def test_payloads_announce_their_own_state_even_when_rendered_later(
    make_server: Callable[..., LiveServer],
) -> None:
    """With the workers off, the whole build runs before anything is fanned out."""
    server = make_server(run_workers=False)
    world = World(server)
    world.pipeline("P")
    webhook = world.webhook("http://127.0.0.1:9/unused", settings={"events": list(BUILD_JOB)})
    world.build("p")
    world.run_one_job()
    urls = Urls(public_base_url(server.settings))
    server.admin(lambda session: fanout.fan_out(session, urls, now=utcnow()))
    shown = [
        (
            d["event"],
            d["payload"].get("job", d["payload"]["build"])["state"],
            d["payload"]["build"]["state"],
        )
        for d in reversed(world.deliveries(webhook))
        if d["event"] != "ping"
    ]
    assert shown == [
        ("build.scheduled", "scheduled", "scheduled"),
        ("job.scheduled", "scheduled", "passed"),
        ("job.started", "running", "passed"),
        ("build.running", "running", "running"),
        ("job.finished", "passed", "passed"),
        ("build.finished", "passed", "passed"),
    ]
    job = next(d for d in world.deliveries(webhook) if d["event"] == "job.finished")["payload"]
    assert list(job) == ["event", "job", "build", "pipeline", "sender"]
    assert "jobs" not in job["build"] and "pipeline" not in job["build"]


BUILD_JOB = (
    "build.scheduled",
    "build.running",
    "build.finished",
    "job.scheduled",
    "job.started",
    "job.finished",
)


def test_two_replicas_deliver_each_event_once_and_in_order(
    make_server: Callable[..., LiveServer],
) -> None:
    first = World(make_server(**FAST))
    second = make_server(**FAST)
    first.pipeline("P")
    with receiver() as hook:
        webhook = first.webhook(hook.url, settings={"events": ["build.scheduled"]})
        other = second.client(first.identity.api_token)
        for n in range(6):
            client = first.client if n % 2 else other
            client.post(f"{PIPELINES}/p/builds", json={"commit": "HEAD", "branch": "main"})
        settled = first.settled(webhook, 7)
        requests = list(hook.requests)
    assert [r.request_id for r in requests] == [d["id"] for d in settled]
    assert [r.json()["build"]["number"] for r in requests[1:]] == [1, 2, 3, 4, 5, 6]


BUILD_KEYS = [
    "id", "graphql_id", "url", "web_url", "number", "state", "blocked", "blocked_state",
    "cancel_reason", "message", "commit", "branch", "tag", "env", "source", "author",
    "created_at", "scheduled_at", "started_at", "failing_at", "finished_at", "pull_request",
    "merge_queue", "cluster_id", "cluster_url", "creator", "meta_data", "rebuilt_from",
    "triggered_from",
]  # fmt: skip
COMMAND_JOB_KEYS = [
    "id", "graphql_id", "type", "state", "step_key", "step", "build_url", "web_url", "name",
    "label", "priority", "agent_query_rules", "log_url", "raw_log_url", "artifacts_url",
    "command", "soft_failed", "exit_status", "signal", "signal_reason", "artifact_paths",
    "agent", "created_at", "scheduled_at", "runnable_at", "started_at", "finished_at",
    "expired_at", "retried", "retried_in_job_id", "retries_count", "retry_type",
    "retry_source", "parallel_group_index", "parallel_group_total", "matrix", "group_key",
    "cluster_id", "cluster_url", "cluster_queue_id", "cluster_queue_url",
]  # fmt: skip


def test_finished_payloads_show_the_build_job_and_pipeline_as_rest_does(
    make_server: Callable[..., LiveServer],
) -> None:
    """build.finished and job.finished of a build and of its rebuild: their keys in order, and
    each object equal to what REST shows once the builds are done."""
    server = make_server(run_workers=False)
    world = World(server)
    world.pipeline("P", "steps:\n  - command: echo hi\n    key: one\n")
    webhook = world.webhook(
        "http://127.0.0.1:9/unused", settings={"events": ["build.finished", "job.finished"]}
    )
    created = world.client.post(
        f"{PIPELINES}/p/builds",
        json={"commit": "abc123", "branch": "main", "message": "Ship", "meta_data": {"k": "v"}},
    )
    assert created.status_code == 201, created.text
    world.run_one_job()
    rebuilt = world.client.put(f"{PIPELINES}/p/builds/1/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    world.run_one_job()
    urls = Urls(public_base_url(server.settings))
    server.admin(lambda session: fanout.fan_out(session, urls, now=utcnow()))
    sent = [d["payload"] for d in reversed(world.deliveries(webhook)) if d["event"] != "ping"]
    assert [(p["event"], p["build"]["number"]) for p in sent] == [
        ("job.finished", 1),
        ("build.finished", 1),
        ("job.finished", 2),
        ("build.finished", 2),
    ]
    user = world.client.get("/v2/user").json()
    for number, (job_finished, build_finished) in ((1, sent[:2]), (2, sent[2:])):
        rest = world.client.get(f"{PIPELINES}/p/builds/{number}").json()
        assert list(build_finished) == ["event", "build", "pipeline", "sender"]
        assert list(job_finished) == ["event", "job", "build", "pipeline", "sender"]
        shown_build = {
            key: value
            for key, value in rest.items()
            if key not in ("jobs", "job_state_counts", "pipeline")
        }
        assert list(build_finished["build"]) == BUILD_KEYS
        assert build_finished["build"] == shown_build
        assert job_finished["build"] == shown_build
        assert build_finished["pipeline"] == job_finished["pipeline"] == rest["pipeline"]
        assert list(job_finished["job"]) == COMMAND_JOB_KEYS
        assert job_finished["job"] == rest["jobs"][0]
        assert (
            build_finished["sender"]
            == job_finished["sender"]
            == {
                "id": user["id"],
                "name": "Test User",
            }
        )
        assert (shown_build["state"], shown_build["message"]) == ("passed", "Ship")
        assert shown_build["creator"] == user
        assert (
            shown_build["url"] == f"{urls.base}/v2/organizations/acme/pipelines/p/builds/{number}"
        )
        job = job_finished["job"]
        assert (job["state"], job["exit_status"], job["step_key"]) == ("passed", 0, "one")
        assert job["agent"]["id"] == rest["jobs"][0]["agent"]["id"]
    first = world.client.get(f"{PIPELINES}/p/builds/1").json()
    assert sent[0]["build"]["meta_data"] == {"k": "v"}
    assert sent[1]["build"]["rebuilt_from"] is None
    assert sent[3]["build"]["rebuilt_from"] == {
        "id": first["id"],
        "number": 1,
        "url": first["url"],
    }
