"""Code hosts' webhooks at a pipeline's webhook_url, over real HTTP: payloads shaped as GitHub,
GitLab, Gitea and Bitbucket send them (written here), signatures computed here, and a local
HTTP server standing in for the hosts' commit status APIs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer
from tests.support.processes import wait_until
from tests.support.webhook_receiver import Receiver, receiver

PIPELINES = "/v2/organizations/acme/pipelines"
SHA = "1f3b5e8c9d0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c"
SHA2 = "2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a"
ZERO = "0" * 40
SECRET = "s3cret-of-the-hook"
FAST = {
    "webhook_poll_interval_seconds": 0.05,
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "webhook_timeout_seconds": 2.0,
}
CONFIGURATION = "steps:\n  - command: echo hi\n"


class Host:
    """A server, its organization, and a fake code host API answering commit statuses."""

    def __init__(self, server: LiveServer, api: Receiver) -> None:
        self.server = server
        self.api = api
        identity = server.identity("acme")
        self.identity = identity
        self.client = server.client(identity.api_token)

    def pipeline(self, repository: str, **fields: Any) -> dict[str, Any]:
        body = {
            "name": fields.pop("name", "app"),
            "repository": repository,
            "configuration": CONFIGURATION,
            **fields,
        }
        response = self.client.post(PIPELINES, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def deliver(
        self, pipeline: dict[str, Any], headers: dict[str, str], payload: Any
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return httpx.post(
            pipeline["provider"]["webhook_url"],
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=30,
        )

    def builds(self, slug: str = "app") -> list[dict[str, Any]]:
        response = self.client.get(f"{PIPELINES}/{slug}/builds")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def deliveries(self, slug: str = "app") -> list[dict[str, Any]]:
        response = self.client.get(f"{PIPELINES}/{slug}/source-deliveries")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def agent(self) -> ScriptedAgent:
        return ScriptedAgent.register(self.server.url, self.identity.agent_token)


@pytest.fixture
def host(make_server: Callable[..., LiveServer]) -> Iterator[Host]:
    with receiver(lambda _index, _headers, _body: 201) as api:
        base = api.url.removesuffix("/hook")
        server = make_server(
            **FAST,
            github_api_url=base + "/github",
            github_token="ghp-test-token",
            gitlab_api_url=base + "/gitlab/api/v4",
            gitlab_token="glpat-test-token",
            gitea_api_url=base + "/gitea/api/v1",
            gitea_token="gitea-test-token",
        )
        yield Host(server, api)


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_push(
    ref: str = "refs/heads/main", after: str = SHA, *, deleted: bool = False
) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": ZERO if not deleted else SHA,
        "after": after,
        "created": False,
        "deleted": deleted,
        "forced": False,
        "compare": "https://github.com/acme/app/compare/abc...def",
        "commits": [],
        "head_commit": None
        if deleted
        else {
            "id": after,
            "tree_id": "9c1e3b5d7f9a2a4c6e8f0b1d3f5a7c9e1b3d5f7a",
            "distinct": True,
            "message": "Fix the flaky test\n\nIt waited on a timer.",
            "timestamp": "2026-12-07T10:00:00+01:00",
            "url": f"https://github.com/acme/app/commit/{after}",
            "author": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
            "added": [],
            "removed": [],
            "modified": ["tests/test_app.py"],
        },
        "repository": {
            "id": 1296269,
            "name": "app",
            "full_name": "acme/app",
            "clone_url": "https://github.com/acme/app.git",
            "ssh_url": "git@github.com:acme/app.git",
            "default_branch": "main",
        },
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": {"login": "ada", "id": 1},
    }


def github_pull_request(action: str = "opened", *, labels: list[str] | None = None) -> Any:
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "url": "https://api.github.com/repos/acme/app/pulls/7",
            "number": 7,
            "state": "open",
            "title": "Add the cache",
            "draft": False,
            "user": {"login": "grace", "id": 2},
            "labels": [{"id": i, "name": name} for i, name in enumerate(labels or [])],
            "head": {
                "label": "grace:cache",
                "ref": "cache",
                "sha": SHA2,
                "repo": {
                    "full_name": "grace/app",
                    "clone_url": "https://github.com/grace/app.git",
                },
            },
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": SHA,
                "repo": {"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"},
            },
        },
        "repository": {"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"},
        "sender": {"login": "grace", "id": 2},
    }


def github_headers(event: str, body: Any, delivery: str = "d-1") -> dict[str, str]:
    raw = json.dumps(body).encode()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signed(raw),
        "User-Agent": "GitHub-Hookshot/abc123",
    }


def secret_settings(**more: Any) -> dict[str, Any]:
    return {"provider_settings": {"webhook_secret": SECRET, **more}}


# --- the pipeline's provider ----------------------------------------------------------------


def test_the_provider_comes_from_the_repository_url_with_buildkites_default_settings(
    host: Host,
) -> None:
    pipeline = host.pipeline("git@github.com:acme/app.git", provider_settings={"build_tags": True})
    provider = pipeline["provider"]
    assert provider["id"] == "github"
    token = provider["webhook_url"].rpartition("/deliver/")[2]
    assert provider["webhook_url"] == f"{host.server.url}/deliver/{token}"
    assert len(token) == 48
    assert provider["settings"] == {
        "trigger_mode": "code",
        "build_branches": True,
        "build_tags": True,
        "build_pull_requests": True,
        "build_pull_request_forks": False,
        "build_pull_request_labels_changed": False,
        "build_pull_request_ready_for_review": False,
        "prefix_pull_request_fork_branch_names": True,
        "pull_request_branch_filter_enabled": False,
        "pull_request_branch_filter_configuration": "",
        "skip_builds_for_existing_commits": False,
        "skip_pull_request_builds_for_existing_commits": True,
        "publish_commit_status": True,
        "publish_commit_status_per_step": False,
        "publish_blocked_as_pending": False,
        "separate_pull_request_statuses": False,
        "use_step_key_as_commit_status": False,
        "filter_enabled": False,
        "filter_condition": "",
        "repository": "acme/app",
    }


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("https://gitlab.com/acme/app.git", "gitlab"),
        ("git@bitbucket.org:acme/app.git", "bitbucket"),
        ("https://gitea.example.com/acme/app.git", "gitea"),
        ("ssh://git@codeberg.org/acme/app.git", "gitea"),
        ("https://git.example.com/acme/app.git", "git"),
    ],
)
def test_each_code_host_is_known_by_its_url(
    make_server: Callable[..., LiveServer], repository: str, expected: str
) -> None:
    server = make_server()
    client = server.client(server.identity("acme").api_token)
    created = client.post(
        PIPELINES, json={"name": "app", "repository": repository, "configuration": CONFIGURATION}
    ).json()
    assert created["provider"]["id"] == expected


def test_provider_id_and_settings_are_set_and_merged_by_update(host: Host) -> None:
    pipeline = host.pipeline("https://code.example.com/acme/app.git")
    assert pipeline["provider"]["id"] == "git"
    answer = host.client.patch(
        f"{PIPELINES}/app",
        json={"provider_id": "gitea", "provider_settings": {"build_tags": True}},
    )
    assert answer.status_code == 200, answer.text
    answer = host.client.patch(
        f"{PIPELINES}/app", json={"provider_settings": {"trigger_mode": "none"}}
    )
    provider = answer.json()["provider"]
    assert provider["id"] == "gitea"
    assert (provider["settings"]["build_tags"], provider["settings"]["trigger_mode"]) == (
        True,
        "none",
    )


def test_bad_provider_settings_are_422_naming_the_key(host: Host) -> None:
    host.pipeline("https://github.com/acme/app.git")
    for change, field in (
        ({"provider_settings": {"trigger_mode": "always"}}, "provider_settings.trigger_mode"),
        ({"provider_settings": {"build_tags": "yes"}}, "provider_settings.build_tags"),
        ({"provider_id": "svn"}, "provider_id"),
    ):
        answer = host.client.patch(f"{PIPELINES}/app", json=change)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field


def test_the_webhook_url_and_secret_are_shown_only_to_who_may_edit(host: Host) -> None:
    host.pipeline("https://github.com/acme/app.git", **secret_settings())
    reader = host.server.identity("acme", scopes=["read_pipelines", "read_builds"])
    shown = host.server.client(reader.api_token).get(f"{PIPELINES}/app").json()
    assert shown["provider"]["webhook_url"] == ""
    editor_view = host.client.get(f"{PIPELINES}/app").json()["provider"]
    assert editor_view["webhook_url"].startswith(f"{host.server.url}/deliver/")
    assert "webhook_secret" not in editor_view["settings"]


# --- GitHub -----------------------------------------------------------------------------------


def test_a_github_push_makes_a_running_build_whose_statuses_reach_github(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git", **secret_settings())
    push = github_push()
    answer = host.deliver(pipeline, github_headers("push", push), push)
    assert answer.status_code == 201, answer.text
    assert answer.json()["outcome"] == "built"
    (build,) = host.builds()
    assert build["source"] == "webhook"
    assert (build["commit"], build["branch"], build["tag"]) == (SHA, "main", None)
    assert build["message"] == "Fix the flaky test\n\nIt waited on a timer."
    assert build["author"] == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "username": "ada",
    }
    assert build["pull_request"] is None
    assert answer.json()["build"]["web_url"] == build["web_url"]

    agent = host.agent()
    job = agent.take_job()
    assert job["env"]["BUILDKITE_SOURCE"] == "webhook"
    assert job["env"]["BUILDKITE_PIPELINE_PROVIDER"] == "github"
    wait_until(lambda: host.builds()[0]["state"] == "running", what="a running build")
    assert agent.finish(job, "0").status_code == 200

    statuses = host.api.wait_for_accepted(2, what="commit statuses")
    assert [r.path for r in statuses] == [f"/github/repos/acme/app/statuses/{SHA}"] * 2
    assert [r.json() for r in statuses] == [
        {
            "state": "pending",
            "target_url": build["web_url"],
            "description": "Build #1 is scheduled",
            "context": "buildkite/app",
        },
        {
            "state": "success",
            "target_url": build["web_url"],
            "description": "Build #1 passed",
            "context": "buildkite/app",
        },
    ]
    assert {r.headers["authorization"] for r in statuses} == {"token ghp-test-token"}


def test_a_failed_build_is_a_failure_status(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    push = github_push()
    assert host.deliver(pipeline, {"X-GitHub-Event": "push"}, push).status_code == 201
    agent = host.agent()
    assert agent.finish(agent.take_job(), "1").status_code == 200
    statuses = host.api.wait_for_accepted(2, what="commit statuses")
    assert [r.json()["state"] for r in statuses] == ["pending", "failure"]


def test_no_statuses_when_publish_commit_status_is_off(host: Host) -> None:
    quiet = host.pipeline(
        "https://github.com/acme/app.git",
        provider_settings={"publish_commit_status": False},
    )
    assert host.deliver(quiet, {"X-GitHub-Event": "push"}, github_push()).status_code == 201
    agent = host.agent()
    assert agent.finish(agent.take_job(), "0").status_code == 200
    wait_until(lambda: host.builds()[0]["state"] == "passed", what="a passed build")
    # Events fan out in outbox order: once a later pipeline's status arrives, the quiet
    # pipeline's events have been through the fan-out too.
    loud = host.pipeline("https://github.com/acme/app.git", name="loud")
    assert (
        host.deliver(loud, {"X-GitHub-Event": "push"}, github_push(after=SHA2)).status_code == 201
    )
    host.api.wait_for_accepted(1, what="a commit status")
    assert [(r.path, r.json()["context"]) for r in host.api.accepted()] == [
        (f"/github/repos/acme/app/statuses/{SHA2}", "buildkite/loud")
    ]


def test_a_status_the_host_refuses_with_5xx_is_retried_until_taken(
    make_server: Callable[..., LiveServer],
) -> None:
    with receiver(lambda index, _h, _b: 502 if index < 2 else 201) as api:
        server = make_server(**FAST, github_api_url=api.url.removesuffix("/hook"))
        host = Host(server, api)
        pipeline = host.pipeline("https://github.com/acme/app.git")
        assert host.deliver(pipeline, {"X-GitHub-Event": "push"}, github_push()).status_code == 201
        (taken,) = api.wait_for_accepted(1, what="a status after retries")
        assert [r.status for r in api.requests] == [502, 502, 201]
        assert taken.json()["state"] == "pending"
        assert "authorization" not in taken.headers  # no token configured


def test_a_wrong_or_missing_signature_is_401_and_creates_nothing(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git", **secret_settings())
    push = github_push()
    raw = json.dumps(push).encode()
    for headers in (
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": signed(raw, "not-the-secret")},
        {"X-GitHub-Event": "push"},
    ):
        answer = host.deliver(pipeline, headers, push)
        assert answer.status_code == 401, answer.text
        assert "X-Hub-Signature-256" in answer.json()["message"]
    assert host.builds() == []
    assert host.deliveries() == []


def test_an_unknown_token_is_404(host: Host) -> None:
    host.pipeline("https://github.com/acme/app.git")
    answer = httpx.post(
        f"{host.server.url}/deliver/not-a-token",
        json=github_push(),
        headers={"X-GitHub-Event": "push"},
    )
    assert answer.status_code == 404
    assert answer.json() == {"message": "No pipeline has this webhook URL"}


def test_a_malformed_payload_is_400_and_recorded(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    answer = host.deliver(pipeline, {"X-GitHub-Event": "push", "X-GitHub-Delivery": "m-1"}, b"{")
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("The body is not JSON")
    answer = host.deliver(pipeline, {"X-GitHub-Event": "push"}, {"no": "ref"})
    assert answer.status_code == 400
    assert "lacks what github sends" in answer.json()["message"]
    answer = host.deliver(pipeline, {"X-Something": "else"}, github_push())
    assert answer.status_code == 400
    assert [(d["outcome"], d["status_code"], d["event"]) for d in host.deliveries()] == [
        ("malformed", 400, ""),
        ("malformed", 400, "push"),
        ("malformed", 400, "push"),
    ]
    assert host.deliveries()[2]["delivery_id"] == "m-1"
    assert host.builds() == []


def test_a_repeated_delivery_makes_one_build(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git", **secret_settings())
    push = github_push()
    first = host.deliver(pipeline, github_headers("push", push, "same-id"), push)
    again = host.deliver(pipeline, github_headers("push", push, "same-id"), push)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["build"] == first.json()["build"]
    assert len(host.builds()) == 1
    recorded = host.deliveries()
    assert [(d["outcome"], d["delivery_id"]) for d in recorded] == [
        ("duplicate", "same-id"),
        ("built", "same-id"),
    ]
    assert recorded[0]["build"]["number"] == recorded[1]["build"]["number"] == 1


def test_ping_deleted_branches_and_other_events_are_acknowledged_and_ignored(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    ping = {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "Repository"}}
    for event, payload in (
        ("ping", ping),
        ("push", github_push("refs/heads/old", ZERO, deleted=True)),
        ("issues", {"action": "opened", "issue": {"number": 1}}),
    ):
        answer = host.deliver(pipeline, {"X-GitHub-Event": event}, payload)
        assert answer.status_code == 200, answer.text
    assert [(d["event"], d["outcome"], d["reason"]) for d in reversed(host.deliveries())] == [
        ("ping", "ignored", "ping"),
        ("push", "ignored", "The branch 'old' was deleted"),
        ("issues", "ignored", "'issues' events do not start builds"),
    ]
    assert host.builds() == []


def test_a_pull_request_builds_with_its_details_and_variables(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    opened = github_pull_request(labels=["ci", "needs-review"])
    answer = host.deliver(pipeline, {"X-GitHub-Event": "pull_request"}, opened)
    assert answer.status_code == 201, answer.text
    (build,) = host.builds()
    assert (build["branch"], build["commit"], build["message"]) == ("cache", SHA2, "Add the cache")
    assert build["pull_request"] == {
        "id": "7",
        "base": "main",
        "repository": "https://github.com/grace/app.git",
        "labels": ["ci", "needs-review"],
        "draft": False,
    }
    env = host.agent().take_job()["env"]
    assert env["BUILDKITE_PULL_REQUEST"] == "7"
    assert env["BUILDKITE_PULL_REQUEST_BASE_BRANCH"] == "main"
    assert env["BUILDKITE_PULL_REQUEST_REPO"] == "https://github.com/grace/app.git"
    assert env["BUILDKITE_PULL_REQUEST_LABELS"] == "ci,needs-review"
    assert env["BUILDKITE_PULL_REQUEST_DRAFT"] == "false"
    closed = host.deliver(
        pipeline, {"X-GitHub-Event": "pull_request"}, github_pull_request("closed")
    )
    assert closed.json()["reason"] == "Pull request closed: no new code to build"
    labeled = host.deliver(
        pipeline, {"X-GitHub-Event": "pull_request"}, github_pull_request("labeled")
    )
    assert labeled.json()["reason"] == (
        "Pull request labeled: build_pull_request_labels_changed is off"
    )
    assert len(host.builds()) == 1


def test_pull_requests_are_not_built_again_for_a_commit_built_on_push(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    push = github_push("refs/heads/cache", SHA2)
    assert host.deliver(pipeline, {"X-GitHub-Event": "push"}, push).status_code == 201
    answer = host.deliver(pipeline, {"X-GitHub-Event": "pull_request"}, github_pull_request())
    assert answer.status_code == 200
    assert answer.json()["reason"] == (
        f"Commit {SHA2} was built before (skip_pull_request_builds_for_existing_commits is on)"
    )


def test_tags_build_only_when_build_tags_is_on(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    tag = github_push("refs/tags/v1.2.0")
    answer = host.deliver(pipeline, {"X-GitHub-Event": "push"}, tag)
    assert answer.json()["reason"] == "The pipeline does not build tags (build_tags is off)"
    host.client.patch(f"{PIPELINES}/app", json={"provider_settings": {"build_tags": True}})
    assert host.deliver(pipeline, {"X-GitHub-Event": "push"}, tag).status_code == 201
    (build,) = host.builds()
    assert (build["tag"], build["branch"]) == ("v1.2.0", "v1.2.0")
    assert host.agent().take_job()["env"]["BUILDKITE_TAG"] == "v1.2.0"


def test_the_branch_filter_and_the_filter_condition_decide_what_builds(host: Host) -> None:
    pipeline = host.pipeline(
        "https://github.com/acme/app.git",
        branch_configuration="main release/*",
        provider_settings={
            "filter_enabled": True,
            "filter_condition": "build.message !~ /skip ci/",
        },
    )
    feature = host.deliver(pipeline, {"X-GitHub-Event": "push"}, github_push("refs/heads/feature"))
    assert feature.json()["reason"] == (
        "'feature' does not match the pipeline's branch filter 'main release/*'"
    )
    release = github_push("refs/heads/release/2.0")
    assert host.deliver(pipeline, {"X-GitHub-Event": "push"}, release).status_code == 201
    skipped = github_push(after=SHA2)
    skipped["head_commit"]["message"] = "Docs only [skip ci]"
    answer = host.deliver(pipeline, {"X-GitHub-Event": "push"}, skipped)
    assert answer.json()["reason"] == "The filter condition 'build.message !~ /skip ci/' is false"
    assert [b["branch"] for b in host.builds()] == ["release/2.0"]


def test_trigger_mode_none_builds_nothing(host: Host) -> None:
    pipeline = host.pipeline(
        "https://github.com/acme/app.git", provider_settings={"trigger_mode": "none"}
    )
    answer = host.deliver(pipeline, {"X-GitHub-Event": "push"}, github_push())
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "ignored"
    assert host.builds() == []


def test_a_newer_push_skips_queued_and_cancels_running_builds_of_its_branch(host: Host) -> None:
    pipeline = host.pipeline("https://github.com/acme/app.git")
    host.client.patch(
        f"{PIPELINES}/app",
        json={
            "skip_queued_branch_builds": True,
            "cancel_running_branch_builds": True,
            "cancel_running_branch_builds_filter": "!main",
        },
    )
    hook = {"X-GitHub-Event": "push"}
    shas = [f"{n:040x}" for n in range(1, 6)]

    def push(branch: str, sha: str) -> None:
        answer = host.deliver(pipeline, hook, github_push(f"refs/heads/{branch}", sha))
        assert answer.status_code == 201, answer.text

    push("dev", shas[0])
    host.agent().take_job()  # build 1 runs
    push("dev", shas[1])  # cancels build 1
    host.agent().take_job()  # build 2 runs
    push("main", shas[2])
    push("main", shas[3])  # skips build 3, which nobody started
    host.agent().take_job()  # build 4 runs
    push("main", shas[4])  # main is not in the cancel filter: build 4 goes on
    states = {b["number"]: b["state"] for b in host.builds()}
    assert states == {1: "canceling", 2: "running", 3: "skipped", 4: "running", 5: "scheduled"}
    canceled = host.client.get(f"{PIPELINES}/app/builds/1").json()
    assert canceled["cancel_reason"] == "Canceled by newer build #2"
    skipped = host.client.get(f"{PIPELINES}/app/builds/3").json()
    assert skipped["cancel_reason"] == "Skipped by newer build #4"
    assert [j["state"] for j in skipped["jobs"]] == ["skipped"]


# --- GitLab, Gitea, Bitbucket ----------------------------------------------------------------


def gitlab_push(ref: str = "refs/heads/main", after: str = SHA) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": ZERO,
        "after": after,
        "ref": ref,
        "checkout_sha": after,
        "user_name": "Ada Lovelace",
        "user_username": "ada",
        "user_email": "ada@example.com",
        "project": {
            "path_with_namespace": "acme/app",
            "git_http_url": "https://gitlab.com/acme/app.git",
        },
        "commits": [
            {
                "id": after,
                "message": "Speed up the cache\n",
                "title": "Speed up the cache",
                "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
            }
        ],
        "total_commits_count": 1,
    }


def gitlab_merge_request() -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"name": "Grace Hopper", "username": "grace", "email": "grace@example.com"},
        "project": {"path_with_namespace": "acme/app"},
        "object_attributes": {
            "iid": 12,
            "title": "Add the cache",
            "source_branch": "cache",
            "target_branch": "main",
            "action": "open",
            "draft": False,
            "source": {"git_http_url": "https://gitlab.com/grace/app.git"},
            "last_commit": {"id": SHA2, "message": "Add the cache"},
        },
        "labels": [{"id": 1, "title": "backend"}],
    }


def test_gitlab_pushes_and_merge_requests_build_and_statuses_reach_gitlab(host: Host) -> None:
    pipeline = host.pipeline("https://gitlab.com/acme/app.git", **secret_settings())
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    wrong = host.deliver(pipeline, {**headers, "X-Gitlab-Token": "nope"}, gitlab_push())
    assert wrong.status_code == 401
    assert wrong.json()["message"].startswith("X-Gitlab-Token is wrong")
    assert host.deliver(pipeline, headers, gitlab_push()).status_code == 201
    mr = host.deliver(
        pipeline,
        {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": SECRET},
        gitlab_merge_request(),
    )
    assert mr.status_code == 201, mr.text
    merge, push = host.builds()
    assert (push["branch"], push["message"], push["author"]["username"]) == (
        "main",
        "Speed up the cache\n",
        "ada",
    )
    assert merge["pull_request"] == {
        "id": "12",
        "base": "main",
        "repository": "https://gitlab.com/grace/app.git",
        "labels": ["backend"],
        "draft": False,
    }
    host.agent().pass_a_job()
    statuses = host.api.wait_for_accepted(4, what="GitLab statuses")
    first = [r for r in statuses if r.path.endswith(SHA)]
    assert {r.path for r in first} == {f"/gitlab/api/v4/projects/acme%2Fapp/statuses/{SHA}"}
    assert [r.json()["state"] for r in first] == ["pending", "running", "success"]
    assert first[0].json()["name"] == "buildkite/app"
    assert first[0].headers["private-token"] == "glpat-test-token"


def test_gitea_pushes_are_signed_their_way_and_statuses_reach_gitea(host: Host) -> None:
    pipeline = host.pipeline("https://gitea.example.com/acme/app.git", **secret_settings())
    push = github_push()
    raw = json.dumps(push).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Gitea-Event": "push",
        "X-GitHub-Event": "push",
        "X-Gitea-Delivery": "g-1",
        "X-Gitea-Signature": digest,
    }
    bad = host.deliver(pipeline, {**headers, "X-Gitea-Signature": "0" * 64}, push)
    assert bad.status_code == 401
    answer = host.deliver(pipeline, headers, push)
    assert answer.status_code == 201, answer.text
    assert host.deliveries()[0]["provider"] == "gitea"
    (status,) = host.api.wait_for_accepted(1, what="a Gitea status")
    assert status.path == f"/gitea/api/v1/repos/acme/app/statuses/{SHA}"
    assert status.headers["authorization"] == "token gitea-test-token"
    assert status.json()["context"] == "buildkite/app"


def test_bitbucket_pushes_build_and_deleted_branches_are_ignored(host: Host) -> None:
    pipeline = host.pipeline("git@bitbucket.org:acme/app.git")
    push = {
        "actor": {"display_name": "Ada Lovelace", "nickname": "ada"},
        "repository": {"full_name": "acme/app"},
        "push": {
            "changes": [
                {
                    "new": {
                        "type": "branch",
                        "name": "main",
                        "target": {
                            "type": "commit",
                            "hash": SHA,
                            "message": "Tidy up\n",
                            "author": {
                                "raw": "Ada Lovelace <ada@example.com>",
                                "user": {"display_name": "Ada Lovelace"},
                            },
                        },
                    },
                    "old": {"type": "branch", "name": "main", "target": {"hash": SHA2}},
                }
            ]
        },
    }
    headers = {"X-Event-Key": "repo:push", "X-Request-UUID": "b-1"}
    assert host.deliver(pipeline, headers, push).status_code == 201
    (build,) = host.builds()
    assert (build["commit"], build["message"]) == (SHA, "Tidy up\n")
    assert build["author"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
    push["push"]["changes"][0]["new"] = None
    gone = host.deliver(pipeline, {"X-Event-Key": "repo:push"}, push)
    assert gone.json()["reason"] == "The branch 'main' was deleted"


def test_graphql_shows_the_provider_under_the_repository(host: Host) -> None:
    pipeline = host.pipeline("git@gitlab.com:acme/app.git", provider_settings={"build_tags": True})
    query = """
    query($slug: ID!) {
      pipeline(slug: $slug) {
        repository { url provider { name url webhookUrl settings } }
      }
    }"""
    variables = {"slug": "acme/app"}

    def ask(token: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{host.server.url}/v1",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        repository: dict[str, Any] = answer.json()["data"]["pipeline"]["repository"]
        return repository

    shown = ask(host.identity.api_token)
    assert shown["url"] == "git@gitlab.com:acme/app.git"
    provider = shown["provider"]
    assert (provider["name"], provider["url"]) == ("GitLab", "https://gitlab.com/acme/app")
    assert provider["webhookUrl"] == pipeline["provider"]["webhook_url"]
    assert json.loads(provider["settings"]) == pipeline["provider"]["settings"]
    reader = host.server.identity("acme", scopes=["read_pipelines", "graphql"])
    assert ask(reader.api_token)["provider"]["webhookUrl"] is None
