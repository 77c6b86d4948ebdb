"""Pipelines and builds over REST: shapes, numbering, listing and pagination."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.live_server import LiveServer

PIPELINE = "steps:\n  - label: Hello\n    command: echo hello\n"


def test_create_pipeline_returns_buildkites_shape(server: LiveServer) -> None:
    identity = server.identity("acme")
    response = server.client(identity.api_token).post(
        "/v2/organizations/acme/pipelines",
        json={"name": "My Pipeline", "repository": "", "configuration": PIPELINE},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["slug"] == "my-pipeline"
    assert body["name"] == "My Pipeline"
    assert body["builds_url"] == f"{server.url}/v2/organizations/acme/pipelines/my-pipeline/builds"
    assert body["url"] == f"{server.url}/v2/organizations/acme/pipelines/my-pipeline"
    assert body["configuration"] == PIPELINE
    assert body["steps"][0]["type"] == "script"
    assert body["steps"][0]["command"] == "echo hello"
    assert body["created_by"]["email"] == identity.email
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 24


def test_duplicate_pipeline_name_is_422(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    again = client.post(
        "/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE}
    )
    assert again.status_code == 422
    assert again.json()["errors"] == [{"field": "name", "code": "has already been taken"}]


def test_build_numbers_are_unique_under_concurrent_creation(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})

    def create(_: int) -> int:
        with server.client(identity.api_token) as own:
            response = own.post(
                "/v2/organizations/acme/pipelines/p/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
            assert response.status_code == 201, response.text
            return int(response.json()["number"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(create, range(24)))
    assert sorted(numbers) == list(range(1, 25))


def test_created_build_has_jobs_meta_data_and_creator(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    response = client.post(
        "/v2/organizations/acme/pipelines/p/builds",
        json={
            "commit": "abc123",
            "branch": "feature/x",
            "message": "Deploy :rocket:",
            "env": {"DEPLOY_ENV": "production"},
            "meta_data": {"release": "v1.2.3"},
        },
    )
    assert response.status_code == 201
    build = response.json()
    assert build["number"] == 1
    assert build["state"] == "scheduled"
    assert build["source"] == "api"
    assert build["commit"] == "abc123"
    assert build["branch"] == "feature/x"
    assert build["env"] == {"DEPLOY_ENV": "production"}
    assert build["meta_data"] == {"release": "v1.2.3"}
    assert build["creator"]["email"] == identity.email
    assert build["pipeline"]["slug"] == "p"
    assert build["web_url"] == f"{server.url}/acme/p/builds/1"
    assert [job["name"] for job in build["jobs"]] == ["Hello"]
    assert build["jobs"][0]["agent_query_rules"] == ["queue=default"]


def test_list_builds_is_newest_first_with_link_header_without_last(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    for branch in ["main", "dev", "main", "main", "dev"]:
        client.post(
            "/v2/organizations/acme/pipelines/p/builds", json={"commit": "HEAD", "branch": branch}
        )
    page = client.get(
        "/v2/organizations/acme/pipelines/p/builds", params={"per_page": 2, "page": 2}
    )
    assert [build["number"] for build in page.json()] == [3, 2]
    base = f"{server.url}/v2/organizations/acme/pipelines/p/builds"
    assert page.headers["link"] == (
        f'<{base}?page=1&per_page=2>; rel="first", '
        f'<{base}?page=1&per_page=2>; rel="prev", '
        f'<{base}?page=3&per_page=2>; rel="next"'
    )
    final = client.get(
        "/v2/organizations/acme/pipelines/p/builds", params={"per_page": 2, "page": 3}
    )
    assert [build["number"] for build in final.json()] == [1]
    assert 'rel="next"' not in final.headers["link"]
    dev = client.get("/v2/organizations/acme/pipelines/p/builds", params={"branch": "dev"})
    assert [build["number"] for build in dev.json()] == [5, 2]
    assert "link" not in dev.headers


def test_get_pipeline_and_organizations(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    assert client.get("/v2/organizations/acme/pipelines/p").json()["slug"] == "p"
    assert [o["slug"] for o in client.get("/v2/organizations/").json()] == ["acme"]
    assert client.get("/v2/user").json()["email"] == identity.email


MIXED = """
env:
  TOP: "1"
steps:
  - label: ":one: first"
    key: first
    command: echo one
    env:
      STEP: "x"
    agents:
      queue: default
  - wait
  - block: Release
    fields:
      - text: Notes
        key: notes
  - label: after
    command: echo after
    depends_on: first
    retry:
      automatic: true
  - trigger: other
    async: true
"""


def test_create_answer_is_the_build_as_get_shows_it(server: LiveServer) -> None:
    """The create answer is rendered from what the create wrote, not read back: it must be
    what a GET of the build shows, for every kind of step, meta-data, env and author."""
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    for name, configuration in (("Other", PIPELINE), ("Mixed", MIXED)):
        made = client.post(
            "/v2/organizations/acme/pipelines", json={"name": name, "configuration": configuration}
        )
        assert made.status_code == 201, made.text
    for body in (
        {"commit": "HEAD", "branch": "main"},
        {
            "commit": "abc123",
            "branch": "feature/x",
            "message": "Ship it",
            "env": {"A": "b", "Z": "y"},
            "meta_data": {"release": "yes", "another": "1", "zeta": ""},
            "author": {"name": "Ada", "email": "ada@example.com"},
            "pull_request_id": 12,
            "pull_request_base_branch": "main",
        },
    ):
        created = client.post("/v2/organizations/acme/pipelines/mixed/builds", json=body)
        assert created.status_code == 201, created.text
        answer = created.json()
        shown = client.get(f"/v2/organizations/acme/pipelines/mixed/builds/{answer['number']}")
        assert shown.status_code == 200
        assert [job["type"] for job in answer["jobs"]] == [
            "script",
            "waiter",
            "manual",
            "script",
            "trigger",
        ]
        got = shown.json()
        assert got.pop("job_state_counts") == {
            "total": 5,
            "states": {"scheduled": 1, "waiting": 4},
        }
        assert answer == got
