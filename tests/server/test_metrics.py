"""`/metrics`: what a Prometheus scrape of a real server reads after real API calls, parsed
with prometheus-client's own parser; who may scrape it; and that no rate limit counts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kiteline.server.app import create_app
from kiteline.settings import Settings
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer
from tests.support.processes import wait_until
from tests.support.webhook_receiver import receiver

PIPELINES = "/v2/organizations/acme/pipelines"
TWO_STEPS = "steps:\n  - command: echo a\n  - command: echo b\n"
DEPLOY = "steps:\n  - command: ./deploy\n    agents:\n      queue: deploy\n"
FAST_WEBHOOKS = {
    "webhook_poll_interval_seconds": 0.05,
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer, **headers: str) -> Samples:
    answer = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def names(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: found for (sample, labels), found in samples.items() if sample == name}


def setup(server: LiveServer) -> tuple[Identity, httpx.Client]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    for name, configuration in (("Two", TWO_STEPS), ("Deploy", DEPLOY)):
        made = client.post(PIPELINES, json={"name": name, "configuration": configuration})
        assert made.status_code == 201, made.text
    return identity, client


def build(client: httpx.Client, pipeline: str) -> None:
    created = client.post(
        f"{PIPELINES}/{pipeline}/builds", json={"commit": "HEAD", "branch": "main"}
    )
    assert created.status_code == 201, created.text


def test_jobs_agents_latencies_and_log_bytes_after_builds_and_an_agent(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(run_workers=False)  # nothing in the background holds a connection
    identity, client = setup(server)
    build(client, "two")
    build(client, "deploy")

    before = scrape(server)
    assert names(before, "kiteline_jobs") == {
        frozenset({("state", "scheduled"), ("queue", "default")}): 2,
        frozenset({("state", "scheduled"), ("queue", "deploy")}): 1,
    }
    assert names(before, "kiteline_agents") == {}
    assert value(before, "kiteline_job_dispatch_latency_seconds_count") == 0
    assert value(before, "kiteline_job_queue_wait_seconds_count") == 0

    first = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=default"])
    job = first.take_job()
    assert first.log(job, 0, 0, b"hello world").status_code == 201
    assert first.log(job, 1, 11, b"\n").status_code == 201
    assert first.finish(job, "0").status_code == 200
    second = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=default"])
    second.take_job()  # and leaves it running
    second.ping()  # the held job, assigned again: not a second dispatch
    idle = ScriptedAgent.register(server.url, identity.agent_token, meta_data=["queue=default"])
    idle.call("POST", "/disconnect").raise_for_status()

    after = scrape(server)
    assert names(after, "kiteline_jobs") == {
        frozenset({("state", "running"), ("queue", "default")}): 1,
        frozenset({("state", "scheduled"), ("queue", "deploy")}): 1,
    }
    assert names(after, "kiteline_agents") == {
        frozenset({("connection_state", "connected")}): 2,
        frozenset({("connection_state", "disconnected")}): 1,
    }
    assert value(after, "kiteline_job_dispatch_latency_seconds_count") == 2
    assert value(after, "kiteline_job_queue_wait_seconds_count") == 2
    assert value(after, "kiteline_log_bytes_ingested_total") == 12
    chunks = {"method": "POST", "route": "/v3/jobs/{job_id}/chunks", "status": "201"}
    assert value(after, "kiteline_http_request_duration_seconds_count", **chunks) == 2
    creates = {
        "method": "POST",
        "route": "/v2/organizations/{org}/pipelines/{pipeline}/builds",
        "status": "201",
    }
    assert value(after, "kiteline_http_request_duration_seconds_count", **creates) == 2
    # Raw paths never become labels: the job id stays in the template.
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert [route for route in routes if job["id"] in route] == []
    # The scrape's own connection is checked out while it renders; the serving process's
    # once-a-second sign of life may hold a second one at that moment.
    assert value(after, "kiteline_db_pool_checked_out") in (1, 2)


def test_a_request_no_route_matches_is_labelled_unmatched(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    for path in ("/v3/no-such-thing", "/v3/nor-this"):
        assert httpx.post(f"{server.url}{path}").status_code == 404
    samples = scrape(server)
    unmatched = {"method": "POST", "route": "unmatched", "status": "404"}
    assert value(samples, "kiteline_http_request_duration_seconds_count", **unmatched) == 2


def test_webhook_backlog_and_outbox_backlog_are_read_from_the_database_by_every_replica(
    make_server: Callable[..., LiveServer],
) -> None:
    quiet = make_server(run_workers=False)
    _, client = setup(quiet)
    assert value(scrape(quiet), "kiteline_events_backlog") == 0
    with receiver() as hook:
        made = client.post(
            "/v2/organizations/acme/services",
            json={"provider": "webhook", "settings": {"url": hook.url}},
        )
        assert made.status_code == 201, made.text
        build(client, "two")
        waiting = scrape(quiet)
        assert value(waiting, "kiteline_webhook_deliveries_pending") == 1  # the ping
        assert (value(waiting, "kiteline_webhook_delivery_lag_seconds") or 0) > 0
        backlog = value(waiting, "kiteline_events_backlog")
        assert backlog is not None and backlog > 0
        assert (value(waiting, "kiteline_events_backlog_age_seconds") or 0) > 0

        # Another replica runs the workers: the quiet one's scrape sees the backlog drain.
        worker = make_server(**FAST_WEBHOOKS)
        drained = wait_until(
            lambda: (
                (found := scrape(quiet))
                and value(found, "kiteline_events_backlog") == 0
                and value(found, "kiteline_webhook_deliveries_pending") == 0
                and found
            ),
            what="the backlog to drain",
        )
        assert value(drained, "kiteline_webhook_delivery_lag_seconds") == 0
        assert value(drained, "kiteline_events_backlog_age_seconds") == 0
        delivered = len(hook.accepted())
        assert delivered > 1  # the ping and the build's events
        # Attempts are counted by the process that made them, once recorded.
        succeeded = frozenset({("outcome", "succeeded")})
        wait_until(
            lambda: (
                names(scrape(worker), "kiteline_webhook_attempts_total").get(succeeded) == delivered
            ),
            what=f"{delivered} attempts counted",
        )
        attempts = names(scrape(worker), "kiteline_webhook_attempts_total")
        assert attempts == {succeeded: delivered}
        assert names(scrape(quiet), "kiteline_webhook_attempts_total") == {}


def test_webhook_attempts_are_counted_by_outcome(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(**FAST_WEBHOOKS, webhook_max_attempts=2)
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    with receiver(lambda _index, _headers, _body: 503) as hook:
        made = client.post(
            "/v2/organizations/acme/services",
            json={"provider": "webhook", "settings": {"url": hook.url}},
        )
        assert made.status_code == 201, made.text
        # The attempt is counted once recorded: wait for both attempts' counts.
        found = wait_until(
            lambda: (
                (samples := scrape(server))
                and sum(names(samples, "kiteline_webhook_attempts_total").values()) == 2
                and samples
            ),
            what="the ping to fail for good",
        )
    assert value(found, "kiteline_webhook_deliveries_pending") == 0
    assert names(found, "kiteline_webhook_attempts_total") == {
        frozenset({("outcome", "retrying")}): 1,
        frozenset({("outcome", "failed")}): 1,
    }


def test_a_metrics_token_is_required_once_set(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(metrics_token="scrape-me")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token scrape-me"}):
        answer = httpx.get(f"{server.url}/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {
            "message": "Scraping /metrics needs `Authorization: Bearer <KITELINE_METRICS_TOKEN>`"
        }
    assert value(scrape(server, Authorization="Bearer scrape-me"), "kiteline_events_backlog") == 0


async def test_without_a_token_only_loopback_clients_are_answered(tmp_path: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kiteline") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 403
    assert answer.json() == {
        "message": "/metrics answers loopback clients only; set KITELINE_METRICS_TOKEN on the "
        "server to scrape it from elsewhere with that bearer token"
    }


def test_scrapes_are_not_rate_limited(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(rate_limit_org_per_minute=1)
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    assert client.get(PIPELINES).status_code == 200
    assert client.get(PIPELINES).status_code == 429  # the organization's budget is spent
    for _ in range(5):
        answer = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {identity.api_token}"}
        )
        assert answer.status_code == 200
        assert not [name for name in answer.headers if name.lower().startswith("ratelimit")]
