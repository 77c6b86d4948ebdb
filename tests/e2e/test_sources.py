"""End to end: real `kiteline server` and `kiteline agent` processes. A GitHub push to the
pipeline's webhook_url runs on the agent and its commit statuses reach a fake GitHub; a
minute-level schedule makes a build on the real clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support.processes import wait_until
from tests.support.stack import ORG, stack
from tests.support.webhook_receiver import receiver

FAST = {
    "webhook_poll_interval_seconds": "0.05",
    "webhook_backoff_base_seconds": "0.1",
    "webhook_backoff_max_seconds": "0.5",
    "webhook_timeout_seconds": "2",
}
SHA = "8d2a6f0c4e1b3a5c7e9f1b3d5a7c9e1f3b5d7a9c"
#: No repository to clone here: the job skips its checkout, as a pipeline may.
CONFIGURATION = """\
env:
  BUILDKITE_SKIP_CHECKOUT: "true"
steps:
  - label: test
    command: echo "testing $$BUILDKITE_COMMIT of $$BUILDKITE_BRANCH from $$BUILDKITE_SOURCE"
"""


def test_a_github_push_runs_on_an_agent_and_its_statuses_reach_github(
    database_url: str, tmp_path: Path
) -> None:
    with (
        receiver(lambda _i, _h, _b: 201) as github,
        stack(
            database_url,
            tmp_path,
            **FAST,
            github_api_url=github.url.removesuffix("/hook"),
            github_token="ghp-e2e",
        ) as s,
    ):
        created = s.client.post(
            f"/v2/organizations/{ORG}/pipelines",
            json={
                "name": "app",
                "repository": "git@github.com:acme/app.git",
                "configuration": CONFIGURATION,
                "provider_settings": {"webhook_secret": "hush"},
            },
        )
        assert created.status_code == 201, created.text
        webhook_url = created.json()["provider"]["webhook_url"]
        push = {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": SHA,
            "deleted": False,
            "head_commit": {
                "id": SHA,
                "message": "Ship the cache",
                "author": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
            },
            "repository": {"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"},
        }
        body = json.dumps(push).encode()
        signature = "sha256=" + hmac.new(b"hush", body, hashlib.sha256).hexdigest()
        answer = httpx.post(
            webhook_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "e2e-1",
                "X-Hub-Signature-256": signature,
            },
        )
        assert answer.status_code == 201, answer.text
        s.start_agent("runner")
        build = s.finished("app", 1)
        assert (build["state"], build["source"], build["commit"]) == ("passed", "webhook", SHA)
        assert "testing 8d2a6f0c4e1b3a5c7e9f1b3d5a7c9e1f3b5d7a9c of main from webhook" in s.log(
            build["jobs"][0]
        )
        statuses = github.wait_for_accepted(2, what="commit statuses")
        assert [(r.path, r.json()["state"]) for r in statuses] == [
            (f"/repos/acme/app/statuses/{SHA}", "pending"),
            (f"/repos/acme/app/statuses/{SHA}", "success"),
        ]
        assert statuses[1].json() == {
            "state": "success",
            "target_url": build["web_url"],
            "description": "Build #1 passed",
            "context": "buildkite/app",
        }
        assert statuses[1].headers["authorization"] == "token ghp-e2e"


def test_a_minute_schedule_builds_on_the_real_clock(database_url: str, tmp_path: Path) -> None:
    with stack(database_url, tmp_path) as s:
        created = s.client.post(
            f"/v2/organizations/{ORG}/pipelines",
            json={"name": "nightly", "configuration": CONFIGURATION},
        )
        assert created.status_code == 201, created.text
        mutation = """
        mutation($input: PipelineScheduleCreateInput!) {
          pipelineScheduleCreate(input: $input) {
            pipelineScheduleEdge { node { nextBuildAt } }
          }
        }"""
        answer = s.client.post(
            "/v1",
            json={
                "query": mutation,
                "variables": {
                    "input": {
                        "pipelineID": created.json()["graphql_id"],
                        "cronline": "* * * * *",
                        "message": "Every minute",
                    }
                },
            },
        )
        edge = answer.json()["data"]["pipelineScheduleCreate"]["pipelineScheduleEdge"]
        due = datetime.fromisoformat(edge["node"]["nextBuildAt"].replace("Z", "+00:00"))
        assert (due.second, due.microsecond) == (0, 0)
        s.start_agent("runner")
        builds = f"/v2/organizations/{ORG}/pipelines/nightly/builds"
        (first,) = wait_until(
            lambda: s.client.get(builds).json() or None, timeout=150, what="a scheduled build"
        )
        build = s.finished("nightly", first["number"])
        assert (build["state"], build["source"], build["message"]) == (
            "passed",
            "schedule",
            "Every minute",
        )
        created_at = datetime.fromisoformat(build["created_at"].replace("Z", "+00:00"))
        assert created_at >= due
        assert created_at < datetime.now(UTC)
        assert "from schedule" in s.log(build["jobs"][0])
