"""REST rate limits: Buildkite's budgets per organization and per user, headers and 429s."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import LiveServer, free_port, start_live_server

REDIS_URL = os.environ.get("KITELINE_TEST_REDIS_URL")
PIPELINE = "steps:\n  - command: echo hello\n"
StartServer = Callable[..., LiveServer]


@pytest.fixture
def start(database_url: str, tmp_path: Path) -> Iterator[StartServer]:
    """Starts servers with setting overrides, all on one database; stops them afterwards."""
    servers: list[LiveServer] = []

    def start_server(**overrides: Any) -> LiveServer:
        live = start_live_server(database_url, tmp_path / "data", **overrides)
        servers.append(live)
        return live

    yield start_server
    for live in servers:
        live.stop()


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith("ratelimit-")
    }


def reset_of(response: httpx.Response, header: str = "RateLimit-Reset") -> int:
    reset = int(response.headers[header])
    assert 0 < reset <= 60
    return reset


def test_each_response_carries_the_org_budget_counting_down(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=5)
    client = server.client(server.identity("acme").api_token)
    remaining = []
    for _ in range(3):
        response = client.get("/v2/organizations/acme")
        assert response.status_code == 200
        remaining.append(response.headers["RateLimit-Remaining"])
        assert rate_limit_headers(response) == {
            "ratelimit-scope": "rest",
            "ratelimit-remaining": remaining[-1],
            "ratelimit-limit": "5",
            "ratelimit-reset": str(reset_of(response)),
        }
    assert remaining == ["4", "3", "2"]


def test_request_over_the_org_limit_is_429_with_buildkites_body(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=2)
    client = server.client(server.identity("acme").api_token)
    assert [client.get("/v2/organizations/acme").status_code for _ in range(2)] == [200, 200]

    response = client.get("/v2/organizations/acme")

    assert response.status_code == 429
    reset = reset_of(response)
    assert response.json() == {
        "message": "You have exceeded your API rate limit. "
        f"Please wait {reset} seconds before making more requests.",
        "scope": "rest",
        "limit": 2,
        "current": 3,
        "reset": reset,
    }
    assert rate_limit_headers(response) == {
        "ratelimit-scope": "rest",
        "ratelimit-remaining": "0",
        "ratelimit-limit": "2",
        "ratelimit-reset": str(reset),
        "ratelimit-warning": "You have exceeded your API rate limit.",
    }


def test_error_responses_carry_the_headers_and_count(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=5)
    client = server.client(server.identity("acme").api_token)
    response = client.get("/v2/organizations/acme/pipelines/missing")
    assert response.status_code == 404
    assert response.headers["RateLimit-Remaining"] == "4"
    assert client.get("/v2/organizations/acme").headers["RateLimit-Remaining"] == "3"


def test_unauthenticated_requests_are_not_counted(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=5)
    identity = server.identity("acme")
    refused = server.client("bkua_not-a-real-token").get("/v2/organizations/acme")
    assert refused.status_code == 401
    assert rate_limit_headers(refused) == {}
    response = server.client(identity.api_token).get("/v2/organizations/acme")
    assert response.headers["RateLimit-Remaining"] == "4"


def test_organizations_have_separate_budgets(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=1)
    acme = server.client(server.identity("acme").api_token)
    other = server.client(server.identity("other").api_token)
    assert acme.get("/v2/organizations/acme").status_code == 200
    assert acme.get("/v2/organizations/acme").status_code == 429

    response = other.get("/v2/organizations/other")

    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == "0"
    assert "RateLimit-Warning" not in response.headers


def test_paths_without_an_organization_spend_the_users_own_budget(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=2)
    client = server.client(server.identity("acme").api_token)
    assert [client.get("/v2/access-token").status_code for _ in range(3)] == [200, 200, 429]

    response = client.get("/v2/organizations/acme")

    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == "1"


def test_a_refused_request_runs_no_endpoint(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=2)
    client = server.client(server.identity("acme").api_token)
    created = client.post(
        "/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE}
    )
    assert created.status_code == 201
    assert client.get("/v2/organizations/acme/pipelines/p").status_code == 200

    refused = client.post(
        "/v2/organizations/acme/pipelines/p/builds", json={"commit": "HEAD", "branch": "main"}
    )

    assert refused.status_code == 429
    # /v2/builds has no organization in its path, so it spends the user's bucket, not acme's.
    builds = client.get("/v2/builds")
    assert builds.status_code == 200
    assert builds.json() == []


def test_zero_turns_the_org_limit_off(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=0)
    response = server.client(server.identity("acme").api_token).get("/v2/organizations/acme")
    assert response.status_code == 200
    assert rate_limit_headers(response) == {}


def test_user_limit_is_off_by_default(start: StartServer) -> None:
    server = start()
    response = server.client(server.identity("acme").api_token).get("/v2/organizations/acme")
    assert set(rate_limit_headers(response)) == {
        "ratelimit-scope",
        "ratelimit-remaining",
        "ratelimit-limit",
        "ratelimit-reset",
    }
    assert response.headers["RateLimit-Limit"] == "200"


def test_user_limit_counts_each_user_on_its_own(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=0, rate_limit_user_per_minute=2)
    first = server.client(server.identity("acme").api_token)
    second = server.client(server.identity("acme").api_token)
    assert [first.get("/v2/organizations/acme").status_code for _ in range(2)] == [200, 200]

    refused = first.get("/v2/organizations/acme")
    allowed = second.get("/v2/organizations/acme")

    assert refused.status_code == 429
    reset = reset_of(refused, "RateLimit-User-Reset")
    assert refused.json() == {
        "message": "You have exceeded your API rate limit. "
        f"Please wait {reset} seconds before making more requests.",
        "scope": "rest_user",
        "limit": 2,
        "current": 3,
        "reset": reset,
    }
    assert rate_limit_headers(refused) == {
        "ratelimit-user-scope": "rest_user",
        "ratelimit-user-remaining": "0",
        "ratelimit-user-limit": "2",
        "ratelimit-user-reset": str(reset),
        "ratelimit-user-warning": "You have exceeded your API rate limit.",
    }
    assert allowed.status_code == 200
    assert allowed.headers["RateLimit-User-Remaining"] == "1"


def test_both_limits_are_counted_and_reported(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=5, rate_limit_user_per_minute=3)
    response = server.client(server.identity("acme").api_token).get("/v2/organizations/acme")
    headers = rate_limit_headers(response)
    assert (headers["ratelimit-scope"], headers["ratelimit-remaining"]) == ("rest", "4")
    assert (headers["ratelimit-user-scope"], headers["ratelimit-user-remaining"]) == (
        "rest_user",
        "2",
    )


def test_rate_limit_endpoint_reports_the_org_budget(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=5)
    client = server.client(server.identity("acme").api_token)
    client.get("/v2/organizations/acme")

    response = client.get("/v2/organizations/acme/rate_limit")

    assert response.status_code == 200
    rest = response.json()["scopes"]["rest"]
    assert rest.pop("reset_at").endswith("Z")
    assert rest == {"limit": 5, "current": 2, "reset": reset_of(response), "enforced": True}


def test_rate_limit_endpoint_says_when_the_limit_is_off(start: StartServer) -> None:
    server = start(rate_limit_org_per_minute=0)
    response = server.client(server.identity("acme").api_token).get(
        "/v2/organizations/acme/rate_limit"
    )
    assert response.json() == {
        "scopes": {
            "rest": {"limit": 0, "current": 0, "reset": 0, "reset_at": None, "enforced": False}
        }
    }


def test_rate_limit_endpoint_is_404_outside_your_organizations(start: StartServer) -> None:
    server = start()
    server.identity("acme")
    stranger = server.client(server.identity("other").api_token)
    response = stranger.get("/v2/organizations/acme/rate_limit")
    assert response.status_code == 404
    assert response.json() == {"message": "No organization found"}


def test_unreachable_redis_leaves_requests_uncounted(start: StartServer) -> None:
    server = start(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    response = server.client(server.identity("acme").api_token).get("/v2/organizations/acme")
    assert response.status_code == 200
    assert rate_limit_headers(response) == {}


@pytest.mark.skipif(not REDIS_URL, reason="KITELINE_TEST_REDIS_URL is not set")
def test_two_servers_share_one_budget_through_redis(start: StartServer) -> None:
    first = start(redis_url=REDIS_URL, rate_limit_org_per_minute=4)
    second = start(redis_url=REDIS_URL, rate_limit_org_per_minute=4)
    org = f"acme-{uuid.uuid4().hex[:12]}"  # Redis outlives the test; its keys must not clash
    token = first.identity(org).api_token
    clients = [first.client(token), second.client(token)] * 3

    responses = [client.get(f"/v2/organizations/{org}") for client in clients]

    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["3", "2", "1", "0", "0", "0"]
    assert [r.json().get("current") for r in responses[4:]] == [5, 6]
