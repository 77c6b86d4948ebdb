"""End to end: real `kiteline server`, `kiteline admin` and `kiteline agent start` processes run
real shell commands, and the results are read back over REST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import (
    kiteline_env,
    run_json,
    running,
    server_process,
    wait_until,
)

PIPELINE = """
steps:
  - label: ":wave: greet"
    key: greet
    command: echo "hello from $BUILDKITE_PIPELINE_SLUG build $$BUILDKITE_BUILD_NUMBER"
  - label: hold
    command: |
      while [ ! -f "$$RELEASE_FILE" ]; do sleep 0.05; done
      echo released
  - wait
  - label: fail
    command: echo "about to fail" && exit 1
"""

PASSING = """
steps:
  - command: echo one
  - wait
  - command: echo two
"""


def _admin(env: dict[str, str]) -> tuple[str, str]:
    run_json(["admin", "create-org", "acme", "--name", "Acme"], env)
    run_json(["admin", "create-user", "dev@acme.test", "--org", "acme"], env)
    token = run_json(["admin", "create-token", "--user", "dev@acme.test", "--scopes", "all"], env)
    agent = run_json(["admin", "create-agent-token", "--org", "acme"], env)
    assert "write_builds" in token["scopes"]
    return token["token"], agent["token"]


def _build(client: httpx.Client, slug: str, number: int) -> dict[str, Any]:
    response = client.get(f"/v2/organizations/acme/pipelines/{slug}/builds/{number}")
    assert response.status_code == 200, response.text
    return response.json()


def _finished(client: httpx.Client, slug: str, number: int) -> dict[str, Any] | None:
    build = _build(client, slug, number)
    return build if build["finished_at"] else None


def test_server_and_agent_processes_run_builds(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = kiteline_env(data_dir, database_url)
    api_token, agent_token = _admin(env)
    release = tmp_path / "release"

    with server_process(data_dir, database_url, tmp_path) as url:
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_token}"}, timeout=30
        )
        for name, configuration in (("Spine", PIPELINE), ("Green", PASSING)):
            created = client.post(
                "/v2/organizations/acme/pipelines",
                json={"name": name, "configuration": configuration},
            )
            assert created.status_code == 201, created.text

        agent_args = [
            "agent",
            "start",
            "--endpoint",
            url,
            "--token",
            agent_token,
            "--spawn",
            "2",
            "--name",
            "e2e-%spawn",
            "--build-path",
            str(tmp_path / "builds"),
        ]
        with running(agent_args, kiteline_env(data_dir), tmp_path / "agent.log"):
            created = client.post(
                "/v2/organizations/acme/pipelines/spine/builds",
                json={
                    "commit": "HEAD",
                    "branch": "main",
                    "env": {"RELEASE_FILE": str(release)},
                },
            )
            assert created.status_code == 201
            assert created.json()["state"] == "scheduled"

            running_build = wait_until(
                lambda: (b := _build(client, "spine", 1))["jobs"][1]["state"] == "running" and b,
                what="the hold step to be running",
            )
            assert running_build["state"] == "running"
            assert running_build["jobs"][3]["state"] == "waiting"
            release.touch()
            build = wait_until(lambda: _finished(client, "spine", 1), what="the build to finish")

            green = client.post(
                "/v2/organizations/acme/pipelines/green/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
            assert green.status_code == 201
            passed = wait_until(lambda: _finished(client, "green", 1), what="the green build")
            logs = {
                job["name"]: client.get(job["raw_log_url"]).text
                for job in build["jobs"]
                if job["type"] == "script"
            }

    assert build["state"] == "failed"
    assert [(job.get("name"), job["state"]) for job in build["jobs"]] == [
        (":wave: greet", "passed"),
        ("hold", "passed"),
        (None, "passed"),
        ("fail", "failed"),
    ]
    assert [job.get("exit_status") for job in build["jobs"]] == [0, 0, None, 1]
    assert {job["agent"]["name"] for job in build["jobs"] if job.get("agent")} <= {"e2e-1", "e2e-2"}
    assert "hello from spine build 1" in logs[":wave: greet"]
    assert "released" in logs["hold"]
    assert "about to fail" in logs["fail"]
    assert passed["state"] == "passed"
    assert [job["state"] for job in passed["jobs"]] == ["passed", "passed", "passed"]
