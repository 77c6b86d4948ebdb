"""Every step type through the real server: block and input with fields, trigger, group,
matrix, parallelism, soft_fail, automatic retries, cancel_on_build_failing, pipeline upload."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

ROOT = "/v2/organizations/acme/pipelines"


class Setup:
    def __init__(
        self, server: LiveServer, configuration: str, *, extra: dict[str, str] | None = None
    ) -> None:
        self.server = server
        self.identity: Identity = server.identity("acme")
        self.client = server.client(self.identity.api_token)
        for name, yaml in {"Main": configuration, **(extra or {})}.items():
            created = self.client.post(ROOT, json={"name": name, "configuration": yaml})
            assert created.status_code == 201, created.text
        self.agent = ScriptedAgent.register(server.url, self.identity.agent_token)

    def build(self, pipeline: str = "main", number: int = 1) -> dict[str, Any]:
        return self.client.get(f"{ROOT}/{pipeline}/builds/{number}").json()

    def create(self, pipeline: str = "main", **body: Any) -> dict[str, Any]:
        response = self.client.post(
            f"{ROOT}/{pipeline}/builds", json={"commit": "HEAD", "branch": "main", **body}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def run(self, exit_status: str = "0") -> dict[str, Any]:
        job = self.agent.take_job()
        assert self.agent.finish(job, exit_status).status_code == 200
        return job


def states(build: dict[str, Any]) -> list[str]:
    return [job["state"] for job in build["jobs"]]


BLOCK = """
steps:
  - command: echo first
  - block: ":rocket: Release?"
    key: release
    prompt: Ship it?
    fields:
      - text: Version
        key: version
        format: "v[0-9.]+"
      - select: Target
        key: target
        options:
          - {label: Staging, value: staging}
          - {label: Production, value: production}
        multiple: true
  - command: buildkite-agent meta-data get version
"""


def test_block_step_blocks_the_build_until_unblocked_with_fields(server: LiveServer) -> None:
    s = Setup(server, BLOCK)
    s.create()
    s.run()
    blocked = s.build()
    assert (blocked["state"], blocked["blocked"]) == ("passed", True)
    assert states(blocked) == ["passed", "blocked", "waiting"]
    block = blocked["jobs"][1]
    assert (block["type"], block["label"], block["unblockable"]) == (
        "manual",
        ":rocket: Release?",
        True,
    )
    url = f"{ROOT}/main/builds/1/jobs/{block['id']}/unblock"

    invalid = s.client.put(url, json={"fields": {"version": "1.0", "target": "moon"}})
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"version", "target"}
    assert s.build()["blocked"] is True

    unblocked = s.client.put(
        url, json={"fields": {"version": "v1.2", "target": ["staging", "production"]}}
    )
    assert unblocked.status_code == 200, unblocked.text
    assert unblocked.json()["state"] == "unblocked"
    assert unblocked.json()["unblocked_by"]["email"] == s.identity.email
    build = s.build()
    (kept,) = [job for job in build["jobs"] if job["id"] == block["id"]]
    assert kept["unblocked_by"]["email"] == s.identity.email
    job_url = f"{ROOT}/main/builds/1/jobs/{block['id']}"
    assert s.client.get(job_url).json()["unblocked_by"]["email"] == s.identity.email
    assert (build["state"], build["blocked"]) == ("running", False)
    assert build["meta_data"] == {"version": "v1.2", "target": "staging\nproduction"}
    s.run()
    assert s.build()["state"] == "passed"
    again = s.client.put(url, json={})
    assert again.status_code == 422
    assert again.json()["message"] == "The job's state must be blocked, but it is unblocked"


def test_block_with_failed_blocked_state(server: LiveServer) -> None:
    s = Setup(server, "steps:\n  - block: Hold\n    blocked_state: failed\n  - command: x\n")
    s.create()
    build = s.build()
    assert (build["state"], build["blocked"]) == ("failed", True)


def test_input_step_does_not_hold_back_later_steps(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - input: Notes\n    fields:\n      - text: Note\n        key: note\n"
        "  - command: echo go\n",
    )
    s.create()
    assert states(s.build()) == ["blocked", "scheduled"]
    s.run()
    assert s.build()["blocked"] is True


def test_trigger_step_waits_for_and_takes_the_state_of_its_build(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - trigger: child\n    label: Deploy\n    build:\n      message: from parent\n"
        "      env: {TARGET: prod}\n  - wait\n  - command: echo after\n",
        extra={"Child": "steps:\n  - command: exit 1\n"},
    )
    s.create()
    parent = s.build()
    trigger = parent["jobs"][0]
    assert (trigger["type"], trigger["state"], trigger["async"]) == ("trigger", "running", False)
    assert trigger["triggered_build"]["number"] == 1
    child = s.build("child")
    assert (child["source"], child["message"], child["env"]) == (
        "trigger_job",
        "from parent",
        {"TARGET": "prod"},
    )
    assert child["triggered_from"] == {
        "build_id": parent["id"],
        "build_number": 1,
        "build_pipeline_slug": "main",
    }
    s.run("1")
    assert s.build("child")["state"] == "failed"
    parent = s.build()
    assert parent["state"] == "failed"
    assert states(parent) == ["failed", "waiting_failed", "waiting_failed"]


def test_async_trigger_passes_at_once(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - trigger: child\n    async: true\n",
        extra={"Child": "steps:\n  - command: echo child\n"},
    )
    s.create()
    assert s.build()["state"] == "passed"
    assert s.build("child")["state"] == "scheduled"


def test_trigger_of_a_missing_pipeline_fails_the_step(server: LiveServer) -> None:
    s = Setup(server, "steps:\n  - trigger: nowhere\n")
    s.create()
    build = s.build()
    assert build["state"] == "failed"
    assert "nowhere" in build["jobs"][0]["trigger_error"]


def test_group_steps_and_dependencies_on_a_group(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - group: Tests\n    key: tests\n    steps:\n      - command: echo a\n"
        "      - command: echo b\n  - command: echo after\n    depends_on: tests\n",
    )
    s.create()
    build = s.build()
    assert [j.get("group_key") for j in build["jobs"]] == ["tests", "tests", None]
    assert states(build) == ["scheduled", "scheduled", "waiting"]
    s.run()
    s.run()
    assert states(s.build()) == ["passed", "passed", "scheduled"]


def test_matrix_and_parallelism_expand_into_jobs(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - label: 'test {{matrix.os}} {{matrix.py}}'\n    command: 'echo {{matrix.os}}'\n"
        "    matrix:\n      setup:\n        os: [linux, mac]\n        py: ['3.11', '3.12']\n"
        "  - label: shard\n    command: echo shard\n    parallelism: 3\n",
    )
    build = s.create()
    labels = [job["name"] for job in build["jobs"]]
    assert labels[:4] == [
        "test linux 3.11",
        "test linux 3.12",
        "test mac 3.11",
        "test mac 3.12",
    ]
    assert [j["parallel_group_index"] for j in build["jobs"][4:]] == [0, 1, 2]
    assert build["jobs"][0]["matrix"] == {"os": "linux", "py": "3.11"}
    first_shard = build["jobs"][4]
    env = s.client.get(f"{ROOT}/main/builds/1/jobs/{first_shard['id']}/env").json()["env"]
    assert (env["BUILDKITE_PARALLEL_JOB"], env["BUILDKITE_PARALLEL_JOB_COUNT"]) == ("0", "3")


def test_soft_fail_lets_the_build_pass(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - command: exit 3\n    soft_fail:\n      - exit_status: 3\n  - wait\n"
        "  - command: echo ok\n",
    )
    s.create()
    s.run("3")
    s.run("0")
    build = s.build()
    assert build["state"] == "passed"
    assert (build["jobs"][0]["state"], build["jobs"][0]["soft_failed"]) == ("failed", True)


def test_soft_fail_only_for_listed_statuses(server: LiveServer) -> None:
    s = Setup(server, "steps:\n  - command: exit 4\n    soft_fail:\n      - exit_status: 3\n")
    s.create()
    s.run("4")
    assert s.build()["state"] == "failed"


def test_automatic_retry_on_exit_status_up_to_its_limit(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - command: exit 2\n    retry:\n      automatic:\n        - exit_status: 2\n"
        "          limit: 2\n",
    )
    s.create()
    for _ in range(3):
        s.run("2")
    build = s.client.get(f"{ROOT}/main/builds/1", params={"include_retried_jobs": "true"}).json()
    assert [(j["state"], j["retried"], j["retry_type"]) for j in build["jobs"]] == [
        ("failed", True, None),
        ("failed", True, "automatic"),
        ("failed", False, "automatic"),
    ]
    assert build["state"] == "failed"
    assert s.agent.ping() == {"action": "idle"}


def test_automatic_retry_does_not_match_other_statuses(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - command: exit 1\n    retry:\n      automatic:\n        - exit_status: 2\n",
    )
    s.create()
    s.run("1")
    assert s.build()["state"] == "failed"
    assert len(s.build()["jobs"]) == 1


def test_cancel_on_build_failing(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - command: sleep 100\n    cancel_on_build_failing: true\n  - command: exit 1\n",
    )
    s.create()
    long_job = s.agent.take_job()
    other = ScriptedAgent.register(server.url, s.identity.agent_token)
    other.finish(other.take_job(), "1")
    state = s.agent.call("GET", f"/jobs/{long_job['id']}", token=long_job["token"]).json()["state"]
    assert state == "canceling"
    s.agent.finish(long_job, "143", signal="SIGTERM", signal_reason="cancel")
    assert s.build()["state"] == "failed"


def test_pipeline_upload_inserts_steps_after_the_uploader(server: LiveServer) -> None:
    s = Setup(
        server,
        (
            "steps:\n  - label: upload\n    key: upload\n"
            "    command: buildkite-agent pipeline upload\n  - wait\n  - command: echo last\n"
        ),
    )
    s.create()
    uploader = s.agent.take_job()
    upload_id = str(uuid.uuid4())
    body = {
        "uuid": upload_id,
        "pipeline": {
            "env": {"FROM_UPLOAD": "yes"},
            "steps": [
                {"label": "dynamic one", "command": "echo 1"},
                {"label": "dynamic two", "command": "echo 2", "depends_on": "upload"},
            ],
        },
    }
    path = f"/jobs/{uploader['id']}/pipelines"
    first = s.agent.call("POST", path, token=uploader["token"], json=body)
    assert first.status_code == 201, first.text
    again = s.agent.call("POST", path, token=uploader["token"], json=body)
    assert again.status_code == 201
    status = s.agent.call("GET", f"{path}/{upload_id}", token=uploader["token"]).json()
    assert status["state"] == "applied"
    build = s.build()
    assert [(j.get("name"), j["state"]) for j in build["jobs"]] == [
        ("upload", "running"),
        ("dynamic one", "scheduled"),
        ("dynamic two", "waiting"),
        (None, "waiting"),
        (None, "waiting"),
    ]
    s.agent.finish(uploader, "0")
    one = s.agent.take_job()
    assert one["env"]["FROM_UPLOAD"] == "yes"
    s.agent.finish(one, "0")
    assert states(s.build())[3:] == ["waiting", "waiting"]
    s.run()
    assert s.run()["env"]["BUILDKITE_COMMAND"] == "echo last"
    assert s.build()["state"] == "passed"


def test_invalid_upload_is_refused_with_the_reason(server: LiveServer) -> None:
    s = Setup(server, "steps:\n  - command: upload\n")
    s.create()
    job = s.agent.take_job()
    response = s.agent.upload_pipeline(
        job, {"steps": [{"command": "x", "timeout_in_minutes": "soon"}]}
    )
    assert response.status_code == 422
    assert "timeout_in_minutes" in response.json()["message"]
    assert len(s.build()["jobs"]) == 1


def test_upload_with_replace_drops_the_steps_not_started(server: LiveServer) -> None:
    s = Setup(server, "steps:\n  - command: upload\n  - wait\n  - command: echo old\n")
    s.create()
    job = s.agent.take_job()
    response = s.agent.upload_pipeline(job, {"steps": [{"command": "echo new"}]}, replace=True)
    assert response.status_code == 201
    assert [j.get("command") for j in s.build()["jobs"]] == ["upload", "echo new"]


def test_branch_filters_and_if_conditions_break_steps(server: LiveServer) -> None:
    s = Setup(
        server,
        "steps:\n  - command: echo main\n    branches: main\n"
        "  - command: echo not\n    branches: '!main'\n"
        "  - command: echo cond\n    if: build.message =~ /deploy/i\n",
    )
    build = s.create(message="Deploy now")
    assert states(build) == ["scheduled", "broken", "scheduled"]
    client: httpx.Client = s.client
    assert client.get(f"{ROOT}/main/builds/1").json()["state"] == "scheduled"
