"""pybuildkite 1.3.0, unchanged, against a live Kiteline: every method for Kiteline's
resources, with `base_url` pointed at the server, checking the data that comes back."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from pybuildkite.buildkite import Buildkite, BuildState
from pybuildkite.jobs import LogFormat
from requests import HTTPError

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

PIPELINE_YAML = (
    "steps:\n  - label: build\n    key: build\n    command: make\n  - wait\n"
    "  - command: echo after\n"
)


@pytest.fixture
def setup(
    make_server: Callable[..., LiveServer],
) -> Iterator[tuple[Buildkite, Identity, LiveServer]]:
    # The 250-build pagination test makes more requests than Buildkite's 200 a minute.
    server = make_server(rate_limit_org_per_minute=0)
    identity = server.identity("acme")
    bk = Buildkite()
    bk.set_access_token(identity.api_token)
    bk.base_url = f"{server.url}/v2/"
    yield bk, identity, server


def test_organizations_user_token_and_meta(setup: tuple[Buildkite, Identity, LiveServer]) -> None:
    bk, identity, _ = setup
    assert [o["slug"] for o in bk.organizations().list_all()] == ["acme"]
    assert bk.organizations().get_org("acme")["name"] == "Acme"
    assert bk.users().get_current_user()["email"] == identity.email
    assert "write_builds" in bk.access_tokens().get_token()["scopes"]
    assert bk.meta().get_meta_information() == {"webhook_ips": []}


def test_pipelines_lifecycle(setup: tuple[Buildkite, Identity, LiveServer]) -> None:
    bk, _, _ = setup
    pipelines = bk.pipelines()
    created = pipelines.create_pipeline("acme", "Visual", "git@github.com:acme/app.git")
    assert created["slug"] == "visual"
    assert created["steps"][0]["command"] == "buildkite-agent pipeline upload"
    yaml_created = pipelines.create_yaml_pipeline("acme", "Yaml", "", PIPELINE_YAML)
    assert yaml_created["configuration"] == PIPELINE_YAML
    assert [p["slug"] for p in pipelines.list_pipelines("acme")] == ["visual", "yaml"]
    assert pipelines.get_pipeline("acme", "yaml")["name"] == "Yaml"
    updated = pipelines.update_pipeline("acme", "yaml", description="Updated description")
    assert updated["description"] == "Updated description"
    assert pipelines.archive_pipeline("acme", "yaml")["archived_at"] is not None
    assert pipelines.unarchive_pipeline("acme", "yaml")["archived_at"] is None
    assert pipelines.delete_pipeline("acme", "visual") is True
    with pytest.raises(HTTPError) as missing:
        pipelines.get_pipeline("acme", "visual")
    assert missing.value.response.status_code == 404


def test_builds_jobs_artifacts_annotations_agents(
    setup: tuple[Buildkite, Identity, LiveServer],
) -> None:
    bk, identity, server = setup
    bk.pipelines().create_yaml_pipeline("acme", "App", "", PIPELINE_YAML)
    builds = bk.builds()
    build = builds.create_build(
        "acme",
        "app",
        "HEAD",
        "main",
        message="Deploy :rocket:",
        env={"DEPLOY_ENV": "production"},
        meta_data={"release": "v1.2.3"},
    )
    assert (build["number"], build["state"], build["meta_data"]) == (
        1,
        "scheduled",
        {"release": "v1.2.3"},
    )

    agent = ScriptedAgent.register(server.url, identity.agent_token, name="runner", version="3.1.0")
    job = agent.take_job()
    agent.log(job, 1, 0, b"building\n")
    content = b"binary"
    artifact_id, instructions = agent.declare_artifact(job, content, path="out/app.bin")
    action = instructions["action"]
    assert httpx.post(action["url"], files={"file": ("out/app.bin", content)}).status_code == 201
    agent.call(
        "POST",
        f"/jobs/{job['id']}/annotations",
        token=job["token"],
        json={"body": "Built **ok**", "style": "success", "context": "build"},
    )
    agent.finish(job, "1")

    jobs = bk.jobs()
    assert b"building" in jobs.get_job_log("acme", "app", 1, job["id"], LogFormat.TEXT)
    assert jobs.get_job_log("acme", "app", 1, job["id"], LogFormat.JSON)["content"] == "building\n"
    assert b"building" in jobs.get_job_log("acme", "app", 1, job["id"])
    env = jobs.get_job_environment_variables("acme", "app", 1, job["id"])["env"]
    assert env["DEPLOY_ENV"] == "production"
    retried = jobs.retry_job("acme", "app", 1, job["id"])
    assert retried["state"] == "scheduled" and retried["retries_count"] == 1
    assert jobs.delete_job_log("acme", "app", 1, job["id"]) is True

    fetched = builds.get_build_by_number("acme", "app", 1, include_retried_jobs=True)
    assert len(fetched["jobs"]) == 4
    assert [b["number"] for b in builds.list_all_for_pipeline("acme", "app")] == [1]
    assert [b["number"] for b in builds.list_all_for_org("acme", branch="main")] == [1]
    assert [b["number"] for b in builds.list_all(states=[BuildState.RUNNING])] == [1]
    assert builds.list_all(states=[BuildState.PASSED, BuildState.FAILED]) == []
    assert [b["number"] for b in builds.list_all(meta_data={"release": "v1.2.3"})] == [1]

    artifacts = bk.artifacts()
    (listed,) = artifacts.list_artifacts_for_build("acme", "app", 1)
    assert listed["filename"] == "app.bin"
    assert artifacts.list_artifacts_for_job("acme", "app", 1, job["id"]) == [listed]
    assert artifacts.get_artifact("acme", "app", 1, job["id"], artifact_id)["sha1sum"] == (
        hashlib.sha1(content).hexdigest()
    )
    assert artifacts.download_artifact("acme", "app", 1, job["id"], artifact_id) == content

    (annotation,) = bk.annotations().list_annotations("acme", "app", 1)
    assert annotation["body_html"] == "<p>Built <strong>ok</strong></p>\n"

    agents = bk.agents()
    (listed_agent,) = agents.list_all("acme", name="run*", version="3.1.0")
    assert agents.get_agent("acme", listed_agent["id"])["name"] == "runner"
    assert agents.stop_agent("acme", listed_agent["id"], force=True) is True

    canceled = builds.cancel_build("acme", "app", 1)
    assert canceled["state"] in ("canceling", "canceled")
    rebuilt = builds.rebuild_build("acme", "app", 1)
    assert rebuilt["number"] == 2 and rebuilt["rebuilt_from"]["number"] == 1
    assert bk.access_tokens().revoke_token() is True


def test_pagination_over_250_builds(setup: tuple[Buildkite, Identity, LiveServer]) -> None:
    bk, identity, _ = setup
    bk.pipelines().create_yaml_pipeline("acme", "Many", "", "steps:\n  - command: 'true'\n")
    with httpx.Client(
        base_url=bk.base_url, headers={"Authorization": f"Bearer {identity.api_token}"}
    ) as http:
        for _ in range(250):
            http.post(
                "organizations/acme/pipelines/many/builds",
                json={"commit": "HEAD", "branch": "main"},
            )
    numbers: list[int] = []
    response = bk.builds().list_all_for_pipeline("acme", "many", with_pagination=True)
    pages = 0
    while True:
        pages += 1
        numbers.extend(build["number"] for build in response.body)
        if not response.next_page:
            break
        response = bk.builds().list_all_for_pipeline(
            "acme", "many", page=response.next_page, with_pagination=True
        )
    assert pages == 3
    assert numbers == list(range(250, 0, -1))


def test_unblock_job(setup: tuple[Buildkite, Identity, LiveServer]) -> None:
    bk, _, _ = setup
    bk.pipelines().create_yaml_pipeline(
        "acme",
        "Gate",
        "",
        "steps:\n  - block: Release\n    fields:\n      - text: Version\n        key: version\n"
        "  - command: deploy\n",
    )
    build = bk.builds().create_build("acme", "gate", "HEAD", "main")
    block = build["jobs"][0]
    user_id = bk.users().get_current_user()["id"]
    unblocked = bk.jobs().unblock_job(
        "acme", "gate", 1, block["id"], {"version": "v2"}, unblocker=user_id
    )
    assert (unblocked["state"], unblocked["unblocked_by"]["id"]) == ("unblocked", user_id)
    after = bk.builds().get_build_by_number("acme", "gate", 1)
    assert after["meta_data"] == {"version": "v2"}
    assert after["jobs"][1]["state"] == "scheduled"
