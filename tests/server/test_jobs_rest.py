"""Jobs over REST: get, retry, env, logs, and the org-scoped routes."""

from __future__ import annotations

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

PIPELINE = "steps:\n  - key: flaky\n    command: exit 2\n  - wait\n  - command: echo after\n"
BUILD = "/v2/organizations/acme/pipelines/p/builds/1"


def _failed_job(server: LiveServer) -> tuple[Identity, httpx.Client, ScriptedAgent, dict]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post("/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE})
    client.post(
        "/v2/organizations/acme/pipelines/p/builds",
        json={"commit": "HEAD", "branch": "main", "env": {"FROM_BUILD": "yes"}},
    )
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    agent.log(job, 1, 0, b"\x1b[31mred\x1b[0m text\n")
    agent.finish(job, "2")
    return identity, client, agent, job


def test_retry_creates_a_new_job_and_reopens_the_build(server: LiveServer) -> None:
    _, client, agent, job = _failed_job(server)
    assert client.get(BUILD).json()["state"] == "failed"
    response = client.put(f"{BUILD}/jobs/{job['id']}/retry")
    assert response.status_code == 200
    new = response.json()
    assert new["id"] != job["id"]
    assert new["state"] == "scheduled"
    assert new["retries_count"] == 1
    assert new["retry_source"] == {"job_id": job["id"], "retry_type": "manual"}
    old = client.get(f"{BUILD}/jobs/{job['id']}").json()
    assert old["retried"] is True
    assert old["retried_in_job_id"] == new["id"]
    build = client.get(BUILD).json()
    assert build["state"] == "running"
    assert [j["state"] for j in build["jobs"]] == ["scheduled", "waiting", "waiting"]
    with_retried = client.get(BUILD, params={"include_retried_jobs": "True"}).json()
    assert len(with_retried["jobs"]) == 4

    second = agent.take_job()
    assert second["id"] == new["id"]
    assert second["env"]["BUILDKITE_RETRY_COUNT"] == "1"
    agent.finish(second, "0")
    agent.finish(agent.take_job(), "0")
    assert client.get(BUILD).json()["state"] == "passed"


def test_retrying_twice_or_a_passed_job_is_refused(server: LiveServer) -> None:
    _, client, _, job = _failed_job(server)
    assert client.put(f"{BUILD}/jobs/{job['id']}/retry").status_code == 200
    again = client.put(f"{BUILD}/jobs/{job['id']}/retry")
    assert again.status_code == 422
    waiter = client.get(BUILD).json()["jobs"][1]
    assert client.put(f"{BUILD}/jobs/{waiter['id']}/retry").status_code == 400


def test_job_env_as_json_and_text(server: LiveServer) -> None:
    _, client, _, job = _failed_job(server)
    env = client.get(f"{BUILD}/jobs/{job['id']}/env").json()["env"]
    assert env["FROM_BUILD"] == "yes"
    assert env["BUILDKITE_JOB_ID"] == job["id"]
    assert env["BUILDKITE_STEP_KEY"] == "flaky"
    text = client.get(f"{BUILD}/jobs/{job['id']}/env.txt").text
    assert "FROM_BUILD=yes\n" in text
    limited = server.client(server.identity("acme", scopes=["read_builds"]).api_token)
    refused = limited.get(f"{BUILD}/jobs/{job['id']}/env")
    assert refused.status_code == 403
    assert refused.json() == {"message": "Your access token doesn't have the read_job_env scope"}


def test_log_formats_and_delete(server: LiveServer) -> None:
    _, client, _, job = _failed_job(server)
    url = f"{BUILD}/jobs/{job['id']}/log"
    assert client.get(url).json()["content"] == "\x1b[31mred\x1b[0m text\n"
    html = client.get(url, headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    assert "red text" in html.text and "\x1b" not in html.text
    assert client.delete(url).status_code == 204
    assert client.get(url).json()["size"] == 0


def test_org_scoped_job_routes_match_build_scoped_ones(server: LiveServer) -> None:
    _, client, _, job = _failed_job(server)
    scoped = client.get(f"/v2/organizations/acme/jobs/{job['id']}")
    assert scoped.status_code == 200
    assert scoped.json() == client.get(f"{BUILD}/jobs/{job['id']}").json()
    other = server.client(server.identity("other").api_token)
    assert other.get(f"/v2/organizations/other/jobs/{job['id']}").status_code == 404
    assert client.get("/v2/organizations/acme/jobs/not-a-uuid").json() == {
        "message": "No job found"
    }
    wrong_build = client.get(f"/v2/organizations/acme/pipelines/p/builds/2/jobs/{job['id']}")
    assert wrong_build.status_code == 404


def test_access_token_shows_and_revokes_itself(server: LiveServer) -> None:
    identity = server.identity("acme", scopes=["read_builds"])
    client = server.client(identity.api_token)
    body = client.get("/v2/access-token").json()
    assert body["scopes"] == ["read_builds"]
    assert body["user"] == {"name": "Test User", "email": identity.email}
    assert client.delete("/v2/access-token").status_code == 204
    assert client.get("/v2/access-token").status_code == 401
