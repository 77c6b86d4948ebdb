"""The build page's live block is rendered once per signature of what it shows and shared
(pages/build_live.py): each of its inputs, changed through the real API or agent protocol,
shows in the next block; and each viewer's block carries its own CSRF token.

Most of these change a *finished* build: its block does not run on the clock, so a block
fetched again is the cached one unless the change moved its key."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from kiteline.server.web.pages.build_live import BLOCKS
from tests.support.agent_protocol import ScriptedAgent, upload_to_the_server
from tests.support.web import Site, csrf_token, signed_in

LIVE = {"HX-Request": "true", "HX-Target": "build_live"}


def block(site: Site, path: str = "/acme/app/builds/1", client: httpx.Client | None = None) -> str:
    response = (client or site.client).get(path, headers=LIVE)
    assert response.status_code == 200, response.text
    assert response.text.startswith('<div id="build_live"')
    return response.text


def finished_build(site: Site, steps: str = "steps:\n  - command: echo hi\n") -> ScriptedAgent:
    """Build 1 of `app`, its one job run and passed by a scripted agent."""
    site.pipeline("app", steps)
    site.build("app")
    agent = ScriptedAgent.register(site.server.url, site.identity.agent_token, name="runner-7")
    job = agent.take_job()
    agent.finish(job, "0").raise_for_status()
    assert site.rest("app", 1)["state"] == "passed"
    return agent


def test_the_same_block_is_served_again_and_each_viewer_gets_its_own_csrf_token(
    site: Site,
) -> None:
    site.pipeline("release", "steps:\n  - block: Go\n  - command: echo go\n")
    site.build("release")
    path = "/acme/release/builds/1"
    first, again = block(site, path), block(site, path)
    assert first == again
    with closing(signed_in(site.server, site.identity.email)) as other:
        theirs = block(site, path, other)
        their_token = csrf_token(other.get(path).text)
    mine = csrf_token(site.client.get(path).text)
    assert mine != their_token
    # The header's "Cancel" and the "Unblock" dialog post the viewer's own token.
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', first)) == {mine}
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', theirs)) == {their_token}
    assert theirs.replace(their_token, mine) == first
    # What is posted with it is accepted: the block's token is the session's.
    (dialog_path,) = re.findall(r'<form method="post" action="([^"]+/unblock)"', first)
    unblocked = site.client.post(dialog_path, data={"csrf_token": mine})
    assert unblocked.status_code == 303
    assert "unblocked by" in block(site, path)


def test_a_finished_builds_block_is_rendered_once_until_it_changes(site: Site) -> None:
    finished_build(site)
    first = block(site)  # rendered (the live server runs in this process)
    hits, misses = BLOCKS.hits, BLOCKS.misses
    assert block(site) == first
    assert (BLOCKS.hits, BLOCKS.misses) == (hits + 1, misses)
    assert (
        f'name="csrf_token" value="{csrf_token(site.client.get("/acme/app/builds/1").text)}"'
        in first
    )
    page_hits = BLOCKS.hits
    assert first in site.client.get("/acme/app/builds/1").text  # the page holds the same block
    assert BLOCKS.hits == page_hits + 1
    site.api.post(
        "/v2/organizations/acme/pipelines/app/builds/1/meta-data", json={"key": "k", "value": "v"}
    ).raise_for_status()
    misses = BLOCKS.misses
    assert "<dt><code>k</code></dt><dd><code>v</code></dd>" in block(site)
    assert BLOCKS.misses == misses + 1


def test_the_agents_jobs_and_the_builds_state_show_as_they_change(site: Site) -> None:
    site.pipeline("app", "steps:\n  - command: echo one\n  - command: echo two\n")
    site.build("app")
    assert "data-build-state>Scheduled<" in block(site)
    agent = ScriptedAgent.register(site.server.url, site.identity.agent_token, name="runner-7")
    job = agent.take_job()
    running = block(site)
    assert "data-build-state>Running<" in running
    assert f'/agents/{agent.id}">runner-7</a>' in running
    agent.finish(job, "1").raise_for_status()
    assert "exit 1" in block(site)
    canceled = site.api.put("/v2/organizations/acme/pipelines/app/builds/1/cancel")
    assert canceled.status_code == 200, canceled.text
    final = block(site)
    assert "data-build-state>Failed<" in final or "data-build-state>Canceled<" in final
    assert ">Cancel</button>" not in final
    assert block(site) == final


def test_meta_data_set_by_a_job_and_over_rest_shows(site: Site) -> None:
    agent, job = site.running_job("app", "steps:\n  - command: echo hi\n")
    assert "No meta-data set." in block(site)
    agent.call(
        "POST", f"/jobs/{job['id']}/data/set", token=job["token"], json={"key": "a", "value": "1"}
    ).raise_for_status()
    assert "<dt><code>a</code></dt><dd><code>1</code></dd>" in block(site)
    agent.finish(job, "0").raise_for_status()
    before = block(site)
    posted = site.api.post(
        "/v2/organizations/acme/pipelines/app/builds/1/meta-data",
        json={"key": "release", "value": "v2"},
    )
    assert posted.status_code in (200, 201), posted.text
    after = block(site)
    assert "<dt><code>release</code></dt><dd><code>v2</code></dd>" not in before
    assert "<dt><code>release</code></dt><dd><code>v2</code></dd>" in after


def test_annotations_created_appended_restyled_and_removed_show(site: Site) -> None:
    finished_build(site)
    url = "/v2/organizations/acme/pipelines/app/builds/1/annotations"
    assert 'id="build-annotations"' in block(site)
    site.api.post(url, json={"body": "Deploy **done**", "context": "deploy"}).raise_for_status()
    assert "<strong>done</strong>" in block(site)
    site.api.post(
        url, json={"body": " and checked", "context": "deploy", "append": True}
    ).raise_for_status()
    assert "<strong>done</strong> and checked" in block(site)
    site.api.post(
        url, json={"body": "Deploy failed", "context": "deploy", "style": "error"}
    ).raise_for_status()
    restyled = block(site)
    assert "annotation-error" in restyled
    assert "Deploy failed" in restyled
    assert "and checked" not in restyled
    assert site.api.delete(f"{url}/deploy").status_code == 204
    assert "Deploy failed" not in block(site)


def test_artifacts_as_they_are_created_and_uploaded_show(site: Site) -> None:
    agent, job = site.running_job("app", "steps:\n  - command: echo hi\n")
    agent.finish(job, "0").raise_for_status()
    assert '<span id="artifact-count" class="count" data-live-block' in block(site)
    assert "No artifacts uploaded." in block(site)
    artifact_id, instructions = agent.declare_artifact(job, b"hello", path="out/report.txt")
    pending = block(site)
    assert 'out/report.txt <span class="muted">(new)</span>' in pending
    uploaded = upload_to_the_server(instructions, b"hello", "report.txt")
    assert uploaded.status_code == 201, uploaded.text
    done = agent.finish_artifact(job, artifact_id)
    assert done.status_code == 200, done.text
    shown = block(site)
    assert f'/jobs/{job["id"]}/artifacts/{artifact_id}" download>out/report.txt</a>' in shown


def test_the_pipelines_name_repository_and_rebuild_setting_show(site: Site) -> None:
    finished_build(site)
    before = block(site)
    assert 'data-title="Passed · App #1"' in before
    assert ">Rebuild</button>" in before
    changed = site.api.patch(
        "/v2/organizations/acme/pipelines/app",
        json={"name": "Renamed", "repository": "git@github.com:acme/app.git"},
    )
    assert changed.status_code == 200, changed.text
    site.build("app", commit="0123456789abcdef0123456789abcdef01234567")
    renamed = block(site)
    assert 'data-title="Passed · Renamed #1"' in renamed
    second = block(site, "/acme/app/builds/2")
    assert 'href="https://github.com/acme/app/commit/0123456789abcdef' in second
    settings = site.api.patch(
        "/v2/organizations/acme/pipelines/app", json={"allow_rebuilds": False}
    )
    assert settings.status_code == 200, settings.text
    assert ">Rebuild</button>" not in block(site)


def test_a_triggered_builds_state_shows_in_its_trigger_row(site: Site) -> None:
    site.pipeline("child", "steps:\n  - command: echo child\n")
    site.pipeline("app", "steps:\n  - trigger: child\n    async: true\n")
    site.build("app")
    assert site.rest("app", 1)["state"] == "passed"
    scheduled = block(site)
    assert 'Child #1</a><span class="muted">scheduled</span>' in scheduled
    canceled = site.api.put("/v2/organizations/acme/pipelines/child/builds/1/cancel")
    assert canceled.status_code == 200, canceled.text
    assert 'Child #1</a><span class="muted">canceled</span>' in block(site)
    child = block(site, "/acme/child/builds/1")
    assert 'href="/acme/app/builds/1#' in child


def test_a_retry_shows_the_new_attempt(site: Site) -> None:
    agent, job = site.running_job("app", "steps:\n  - label: Flaky\n    command: exit 1\n")
    agent.finish(job, "1").raise_for_status()
    failed = block(site)
    assert ">Retry</button>" in failed
    retried = site.api.put(f"/v2/organizations/acme/pipelines/app/builds/1/jobs/{job['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] not in failed
    assert f'id="{retried.json()["id"]}"' in block(site)
