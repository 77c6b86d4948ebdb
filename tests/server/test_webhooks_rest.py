"""Webhooks over REST, in Buildkite's notification-services shape: create, list (cursor
pages), get, update, delete, enable/disable, and validation. (Each route's scope and other
organizations' 404s are in test_scope_matrix.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kiteline.server.webhooks.service import EVENTS
from tests.support.live_server import LiveServer

SERVICES = "/v2/organizations/acme/services"
#: Nothing listens there: pings are refused at once, and nothing leaves the machine.
RECEIVER = "http://127.0.0.1:9/buildkite"


def _create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    settings = {"url": RECEIVER, **fields.pop("settings", {})}
    response = client.post(SERVICES, json={"provider": "webhook", "settings": settings, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def client(server: LiveServer) -> httpx.Client:
    return server.client(server.identity("acme").api_token)


def test_create_answers_the_notification_service_shape(
    server: LiveServer, client: httpx.Client
) -> None:
    created = _create(client, description="Deploys")
    assert created["provider"] == {"id": "webhook", "name": "Webhook"}
    assert created["url"] == f"{server.url}{SERVICES}/{created['id']}"
    assert (created["description"], created["enabled"], created["scope"]) == (
        "Deploys",
        True,
        "all",
    )
    assert created["scope_uuids"] == []
    assert created["branch_configuration"] == ""
    assert set(created["build_states"]) == {
        "build_passed",
        "build_fixed",
        "build_failed",
        "build_blocked",
        "build_canceled",
        "build_failing",
        "job_activated",
    }
    settings = created["settings"]
    assert settings["url"] == RECEIVER
    assert (settings["version"], settings["token_mode"], settings["tls_verify"]) == (
        3,
        "sha256",
        True,
    )
    assert settings["events"] == list(EVENTS)
    assert len(settings["token"]) >= 24
    assert created["created_by"]["name"] == "Test User"
    assert (created["disabled_reason"], created["consecutive_failures"]) == (None, 0)
    assert client.get(created["url"]).json() == created


def test_create_keeps_the_given_token_mode_and_events(client: httpx.Client) -> None:
    created = _create(
        client,
        settings={"token": "t0ken", "token_mode": "signature", "events": ["build.finished"]},
    )
    assert created["settings"]["token"] == "t0ken"
    assert created["settings"]["token_mode"] == "signature"
    assert created["settings"]["events"] == ["build.finished"]
    alias = _create(client, settings={"token_mode": "timestamp"})
    assert alias["settings"]["token_mode"] == "signature"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"provider": "slack", "settings": {"url": RECEIVER}},
            [{"field": "provider", "code": "Kiteline only supports the `webhook` provider"}],
        ),
        (
            {"provider": "webhook", "settings": {}},
            [{"field": "settings.url", "code": "can't be blank"}],
        ),
        (
            {"provider": "webhook", "settings": {"url": "ftp://example.com/x"}},
            [{"field": "settings.url", "code": "must be an http:// or https:// URL"}],
        ),
        (
            {"provider": "webhook", "settings": {"url": RECEIVER, "events": ["build.blocked"]}},
            [{"field": "settings.events", "code": "unknown event(s): build.blocked"}],
        ),
        (
            {"provider": "webhook", "settings": {"url": RECEIVER, "events": []}},
            [
                {
                    "field": "settings.events",
                    "code": "must name at least one event (leave it out for all)",
                }
            ],
        ),
        (
            {"provider": "webhook", "settings": {"url": RECEIVER, "token_mode": "md5"}},
            [{"field": "settings.token_mode", "code": "must be one of sha256, signature, token"}],
        ),
        (
            {"provider": "webhook", "settings": {"url": RECEIVER}, "scope": "some_teams"},
            [
                {
                    "field": "scope",
                    "code": "must be one of all, some_projects (teams and clusters: none)",
                }
            ],
        ),
        (
            {"provider": "webhook", "settings": {"url": RECEIVER}, "scope": "some_projects"},
            [
                {
                    "field": "scope_uuids",
                    "code": "must name at least one pipeline when scope is some_projects",
                }
            ],
        ),
    ],
)
def test_create_refuses_invalid_fields(
    client: httpx.Client, body: dict[str, Any], errors: list[dict[str, str]]
) -> None:
    response = client.post(SERVICES, json=body)
    assert response.status_code == 422
    assert response.json() == {"message": "Validation Failed", "errors": errors}


def test_create_refuses_unknown_fields(client: httpx.Client) -> None:
    response = client.post(
        SERVICES, json={"provider": "webhook", "settings": {"url": RECEIVER, "colour": "red"}}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "settings.colour"


def test_pipeline_scope_takes_only_this_organizations_pipelines(
    server: LiveServer, client: httpx.Client
) -> None:
    mine = client.post(
        "/v2/organizations/acme/pipelines",
        json={"name": "Mine", "configuration": "steps:\n  - command: x\n"},
    ).json()
    other = server.client(server.identity("other").api_token)
    theirs = other.post(
        "/v2/organizations/other/pipelines",
        json={"name": "Theirs", "configuration": "steps:\n  - command: x\n"},
    ).json()
    scoped = _create(client, scope="some_projects", scope_uuids=[mine["id"]])
    assert (scoped["scope"], scoped["scope_uuids"]) == ("some_projects", [mine["id"]])
    refused = client.post(
        SERVICES,
        json={
            "provider": "webhook",
            "settings": {"url": RECEIVER},
            "scope": "some_projects",
            "scope_uuids": [theirs["id"]],
        },
    )
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"field": "scope_uuids", "code": "must be UUIDs of this organization's pipelines"}
    ]


def test_list_is_oldest_first_in_cursor_pages(client: httpx.Client) -> None:
    ids = [_create(client, description=f"hook {n}")["id"] for n in range(3)]
    first = client.get(SERVICES, params={"per_page": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert "next" in first["links"]
    assert first["links"]["self"].endswith(f"{SERVICES}?per_page=2")
    second = client.get(first["links"]["next"]).json()
    assert [item["id"] for item in second["items"]] == ids[2:]
    assert set(second["links"]) == {"self"}


def test_list_refuses_a_cursor_it_did_not_give(client: httpx.Client) -> None:
    response = client.get(SERVICES, params={"after": "bm9wZQ"})
    assert response.status_code == 400
    assert response.json() == {"message": "`after` is not a cursor this list gave out"}


def test_update_changes_only_the_given_fields(client: httpx.Client) -> None:
    created = _create(client, description="before", settings={"token": "keep-me"})
    response = client.patch(
        created["url"],
        json={"description": "after", "settings": {"events": ["job.finished", "build.finished"]}},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["description"] == "after"
    assert updated["settings"]["events"] == ["job.finished", "build.finished"]
    assert updated["settings"]["token"] == "keep-me"
    assert updated["settings"]["url"] == RECEIVER


def test_an_unchanged_get_body_round_trips_through_update(client: httpx.Client) -> None:
    created = _create(client)
    fields = ("provider", "description", "scope", "scope_uuids", "build_states", "settings")
    body = {key: created[key] for key in fields} | {"provider": "webhook"}
    response = client.patch(created["url"], json=body)
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == created["settings"]


def test_disable_and_enable_show_in_the_service(client: httpx.Client) -> None:
    created = _create(client)
    disabled = client.put(created["url"] + "/disable").json()
    assert disabled["enabled"] is False
    assert disabled["disabled_reason"] == "Disabled through the API by Test User"
    enabled = client.put(created["url"] + "/enable").json()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)


def test_delete_removes_the_service(client: httpx.Client) -> None:
    created = _create(client)
    assert client.delete(created["url"]).status_code == 204
    missing = client.get(created["url"])
    assert missing.status_code == 404
    assert missing.json() == {"message": "No notification service found"}


def test_unknown_service_and_delivery_ids_are_not_found(client: httpx.Client) -> None:
    assert client.get(f"{SERVICES}/not-a-uuid").json() == {
        "message": "No notification service found"
    }
    created = _create(client)
    response = client.get(f"{created['url']}/deliveries/3f0a6d0c-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"message": "No delivery found"}


def test_delivery_state_filter_is_validated(client: httpx.Client) -> None:
    created = _create(client)
    response = client.get(created["deliveries_url"], params={"state": "lost"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "state", "code": "must be one of pending, succeeded, failed"}
    ]
