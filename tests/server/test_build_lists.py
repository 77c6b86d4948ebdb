"""Build lists: the organization and all-organization lists, every filter, rebuild."""

from __future__ import annotations

import httpx

from tests.support.live_server import LiveServer

PIPELINE = "steps:\n  - command: echo hello\n"


def _setup(server: LiveServer) -> httpx.Client:
    client = server.client(server.identity("acme").api_token)
    for name in ("Alpha", "Beta"):
        client.post(
            "/v2/organizations/acme/pipelines", json={"name": name, "configuration": PIPELINE}
        )
    for slug, branch, commit, meta in (
        ("alpha", "main", "aaa", {"release": "1"}),
        ("beta", "dev", "bbb", {"release": "2"}),
        ("alpha", "feature/x y", "ccc", {}),
    ):
        response = client.post(
            f"/v2/organizations/acme/pipelines/{slug}/builds",
            json={"commit": commit, "branch": branch, "meta_data": meta},
        )
        assert response.status_code == 201
    return client


def _numbers(response: httpx.Response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.text
    return [(b["pipeline"]["slug"], b["number"]) for b in response.json()]


def test_organization_and_all_builds_lists(server: LiveServer) -> None:
    client = _setup(server)
    expected = [("alpha", 2), ("beta", 1), ("alpha", 1)]
    assert _numbers(client.get("/v2/organizations/acme/builds")) == expected
    assert _numbers(client.get("/v2/builds")) == expected
    other = server.client(server.identity("other").api_token)
    assert other.get("/v2/builds").json() == []


def test_filters_by_branch_commit_state_and_meta_data(server: LiveServer) -> None:
    client = _setup(server)
    url = "/v2/organizations/acme/builds"
    assert _numbers(client.get(url + "?branch%5B%5D=main&branch%5B%5D=dev")) == [
        ("beta", 1),
        ("alpha", 1),
    ]
    assert _numbers(client.get(url, params={"branch": "feature/x y"})) == [("alpha", 2)]
    assert _numbers(client.get(url, params={"branch": "feat*"})) == [("alpha", 2)]
    assert _numbers(client.get(url, params={"commit": "bbb"})) == [("beta", 1)]
    assert _numbers(client.get(url, params={"meta_data[release]": "1"})) == [("alpha", 1)]
    assert _numbers(client.get(url, params={"state": "finished"})) == []
    assert len(client.get(url, params={"state[]": ["scheduled", "running"]}).json()) == 3
    refused = client.get(url, params={"state": "bogus"})
    assert refused.status_code == 400


def test_filters_by_dates_and_creator(server: LiveServer) -> None:
    client = _setup(server)
    url = "/v2/organizations/acme/builds"
    user_id = client.get("/v2/user").json()["id"]
    assert len(client.get(url, params={"creator": user_id}).json()) == 3
    assert client.get(url, params={"created_from": "2999-01-01"}).json() == []
    # pybuildkite sends isoformat() offsets whose `+` arrives as a space.
    assert len(client.get(url + "?created_from=2000-01-02T03:04:05+00:00").json()) == 3
    assert len(client.get(url, params={"created_to": "2999-01-01T00:00:00Z"}).json()) == 3
    assert client.get(url, params={"created_from": "yesterday"}).status_code == 400


def test_exclude_jobs_and_pipeline(server: LiveServer) -> None:
    client = _setup(server)
    build = client.get(
        "/v2/organizations/acme/builds", params={"exclude_jobs": "true", "exclude_pipeline": "true"}
    ).json()[0]
    assert "jobs" not in build and "pipeline" not in build


def test_rebuild_copies_the_build_and_points_back(server: LiveServer) -> None:
    client = _setup(server)
    response = client.put("/v2/organizations/acme/pipelines/alpha/builds/1/rebuild")
    assert response.status_code == 200
    build = response.json()
    assert build["number"] == 3
    assert (build["commit"], build["branch"], build["meta_data"]) == (
        "aaa",
        "main",
        {"release": "1"},
    )
    assert build["rebuilt_from"] == {
        "id": client.get("/v2/organizations/acme/pipelines/alpha/builds/1").json()["id"],
        "number": 1,
        "url": f"{server.url}/v2/organizations/acme/pipelines/alpha/builds/1",
    }
