"""Bad input gets a clear error and loses nothing: nulls, deep pages, extreme dates, odd slugs,
and (on PostgreSQL) values the database can't store."""

from __future__ import annotations

from tests.support.live_server import LiveServer

ROOT = "/v2/organizations/acme/pipelines"
YAML = "steps:\n  - command: x\n"


def test_patch_with_null_for_a_required_field_is_422_and_changes_nothing(
    server: LiveServer,
) -> None:
    client = server.client(server.identity("acme").api_token)
    client.post(ROOT, json={"name": "P", "configuration": YAML})
    response = client.patch(
        f"{ROOT}/p", json={"visibility": None, "env": None, "description": "changed"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "env", "code": "can't be null"},
        {"field": "visibility", "code": "can't be null"},
    ]
    assert client.get(f"{ROOT}/p").json()["description"] is None
    assert client.patch(f"{ROOT}/p", json={"description": None}).status_code == 200
    bad = client.patch(f"{ROOT}/p", json={"visibility": "secret"})
    assert bad.json()["errors"] == [
        {"field": "visibility", "code": "must be one of private, public"}
    ]


def test_slugs_must_be_url_safe(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    response = client.post(ROOT, json={"name": "P", "slug": "a/b", "configuration": YAML})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "slug"


def test_deep_pages_and_extreme_dates_are_400(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    deep = client.get(ROOT, params={"page": "99999999999999999999"})
    assert deep.status_code == 400
    assert deep.json()["message"].startswith("Listing this deep is not supported")
    extreme = client.get(
        "/v2/organizations/acme/builds", params={"created_from": "0001-01-01T00:00:00+14:00"}
    )
    assert extreme.status_code == 400
    assert "created_from" in extreme.json()["message"]


def test_values_the_database_cannot_store_are_422_not_500(server: LiveServer) -> None:
    client = server.client(server.identity("acme").api_token)
    for name in ("nul\u0000name", "x" * 300):
        response = client.post(ROOT, json={"name": name, "configuration": YAML})
        # SQLite stores both; PostgreSQL refuses them: either way, never a 500.
        assert response.status_code in (201, 422)
        if response.status_code == 422:
            assert "can't be stored" in response.json()["message"]
