"""The build page over HTTP: what it shows, its live block, and its actions answered as the API
answers them (unblock validation, retry rules, state refusals, artifact downloads)."""

from __future__ import annotations

import re

import httpx

from tests.support.agent_protocol import ScriptedAgent, upload_to_the_server
from tests.support.web import Site, csrf_token

BLOCK = """\
steps:
  - block: Release
    prompt: Ship it?
    fields:
      - text: Version
        key: version
        format: "v[0-9]+"
      - select: Targets
        key: targets
        multiple: true
        default: [eu]
        options:
          - {label: Europe, value: eu}
          - {label: America, value: us}
      - text: Notes
        key: notes
        required: false
  - command: echo go
"""


def test_the_header_escapes_what_users_wrote_and_links_the_commit(site: Site) -> None:
    site.pipeline(
        "app",
        'steps:\n  - label: "<b>bold</b>"\n    command: echo hi\n',
        repository="git@github.com:acme/app.git",
    )
    site.build(
        "app",
        commit="0123456789abcdef0123456789abcdef01234567",
        branch="<b>topic</b>",
        message="<script>alert(1)</script>\n\nsecond line",
        author={"name": "Ada <ada@example.com>"},
    )
    html = site.client.get("/acme/app/builds/1").text
    assert "<script>alert(1)</script>" not in html
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert '<pre class="build-message">second line</pre>' in html
    assert "<code>&lt;b&gt;topic&lt;/b&gt;</code>" in html
    assert "Ada &lt;ada@example.com&gt;" in html
    assert (
        'href="https://github.com/acme/app/commit/0123456789abcdef0123456789abcdef01234567"'
    ) in html
    assert "via API" in html
    assert '<span class="job-label">&lt;b&gt;bold&lt;/b&gt;</span>' in html
    assert "<b>bold</b>" not in html
    assert "<title>Scheduled · App #1</title>" in html
    assert "build-favicon-scheduled.svg" in html


def test_the_live_block_is_rendered_alone(site: Site) -> None:
    site.pipeline("app", "steps:\n  - command: echo hi\n")
    site.build("app")
    fragment = site.client.get(
        "/acme/app/builds/1", headers={"HX-Request": "true", "HX-Target": "build_live"}
    )
    assert fragment.status_code == 200
    assert fragment.text.startswith('<div id="build_live"')
    assert "<html" not in fragment.text
    for region in ("build-header", "build-jobs", "build-waterfall", "build-artifacts"):
        assert re.search(
            rf'id="{region}"[^>]* data-live-block data-digest="[0-9a-f]{{16}}"', fragment.text
        )


def test_an_unknown_build_or_pipeline_is_a_404_page(site: Site) -> None:
    site.pipeline("app", "steps:\n  - command: echo hi\n")
    out_of_range = [f"/acme/app/builds/{n}" for n in ("0", "-1", str(2**31), str(2**63), "²")]
    for path in ("/acme/app/builds/7", "/acme/app/builds/x", "/acme/nope/builds/1", *out_of_range):
        response = site.client.get(path)
        assert response.status_code == 404, path
        assert "Page Not Found" in response.text


def test_unblock_refuses_fields_as_the_api_does_and_keeps_what_was_given(site: Site) -> None:
    site.pipeline("release", BLOCK)
    block = site.build("release")["jobs"][0]
    path = f"/acme/release/builds/1/jobs/{block['id']}/unblock"
    refused = site.post(path, {"field.version": "12", "field.notes": "<i>hi</i>"})
    assert refused.status_code == 422
    html = refused.text
    assert "Version must match the format v[0-9]+" in html
    # No box ticked is an explicit empty choice, so the default doesn't apply: required.
    assert "Targets is required" in html
    assert 'value="12"' in html
    assert 'value="&lt;i&gt;hi&lt;/i&gt;"' in html
    assert "data-reopen" in html
    assert site.rest("release", 1)["meta_data"] == {}
    assert site.rest("release", 1)["jobs"][0]["state"] == "blocked"


def test_unblock_sets_the_meta_data_and_the_build_goes_on(site: Site) -> None:
    site.pipeline("release", BLOCK)
    block = site.build("release")["jobs"][0]
    response = site.post(
        f"/acme/release/builds/1/jobs/{block['id']}/unblock",
        {"field.version": "v3", "field.targets": ["eu", "us"], "field.notes": ""},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/acme/release/builds/1#{block['id']}"
    build = site.rest("release", 1)
    assert build["meta_data"] == {"version": "v3", "targets": "eu\nus"}
    assert [job["state"] for job in build["jobs"]] == ["unblocked", "scheduled"]
    assert build["jobs"][0]["unblocked_by"]["email"] == site.identity.email


def test_unblocking_twice_says_why_not(site: Site) -> None:
    site.pipeline("release", "steps:\n  - block: Go\n  - command: echo go\n")
    block = site.build("release")["jobs"][0]
    path = f"/acme/release/builds/1/jobs/{block['id']}/unblock"
    form = site.client.get("/acme/release/builds/1").text
    assert site.client.post(path, data={"csrf_token": csrf_token(form)}).status_code == 303
    again = site.client.post(path, data={"csrf_token": csrf_token(form)})
    assert again.status_code == 422
    assert "The job&#39;s state must be blocked, but it is unblocked" in again.text


def test_retry_follows_the_steps_manual_retry_rule(site: Site) -> None:
    site.pipeline(
        "app",
        "steps:\n  - label: Locked\n    command: exit 1\n"
        "    retry:\n      manual:\n        allowed: false\n        reason: Deploys are final\n",
    )
    site.build("app")
    agent = ScriptedAgent.register(site.server.url, site.identity.agent_token)
    job = agent.take_job()
    agent.finish(job, "1").raise_for_status()
    html = site.client.get("/acme/app/builds/1").text
    assert "exit 1" in html
    assert ">Retry</button>" not in html
    refused = site.post(f"/acme/app/builds/1/jobs/{job['id']}/retry")
    assert refused.status_code == 422
    assert "Deploys are final" in refused.text


def test_a_retry_opens_the_new_attempt(site: Site) -> None:
    agent, job = site.running_job("app", "steps:\n  - label: Once\n    command: exit 1\n")
    agent.finish(job, "1").raise_for_status()
    response = site.post(f"/acme/app/builds/1/jobs/{job['id']}/retry")
    assert response.status_code == 303
    jobs = site.rest("app", 1)["jobs"]
    assert [job["retried"] for job in jobs] == [True, False]
    assert response.headers["location"] == f"/acme/app/builds/1#{jobs[1]['id']}"


def test_canceling_a_finished_build_is_refused(site: Site) -> None:
    site.pipeline("app", "steps:\n  - command: echo hi\n")
    site.build("app")
    assert site.post("/acme/app/builds/1/cancel").status_code == 303
    assert site.rest("app", 1)["state"] == "canceled"
    again = site.post("/acme/app/builds/1/cancel")
    assert again.status_code == 422
    assert "Build can&#39;t be canceled because it&#39;s canceled" in again.text


def test_an_artifact_downloads_through_a_signed_url_and_only_from_its_job(site: Site) -> None:
    agent, job = site.running_job("app", "steps:\n  - command: echo one\n  - command: echo two\n")
    artifact_id, instructions = agent.declare_artifact(job, b"hello", path="out/report.txt")
    uploaded = upload_to_the_server(instructions, b"hello", "report.txt")
    assert uploaded.status_code == 201, uploaded.text
    html = site.client.get("/acme/app/builds/1").text
    path = f"/acme/app/builds/1/jobs/{job['id']}/artifacts/{artifact_id}"
    assert f'href="{path}"' in html
    assert "5 B" in html
    redirect = site.client.get(path)
    assert redirect.status_code == 302
    assert "/v3/artifacts/" in redirect.headers["location"]
    assert httpx.get(redirect.headers["location"]).content == b"hello"
    other_job = site.rest("app", 1)["jobs"][1]["id"]
    wrong = site.client.get(f"/acme/app/builds/1/jobs/{other_job}/artifacts/{artifact_id}")
    assert wrong.status_code == 404


def test_a_jobs_environment_is_shown_as_rest_gives_it(site: Site) -> None:
    site.pipeline("app", "env:\n  FROM_PIPELINE: '<yes>'\nsteps:\n  - command: echo hi\n")
    job = site.build("app", env={"FROM_BUILD": "1"})["jobs"][0]
    fragment = site.client.get(
        f"/acme/app/builds/1/jobs/{job['id']}/env", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert (
        f"<dt><code>BUILDKITE_JOB_ID</code></dt><dd><code>{job['id']}</code></dd>" in fragment.text
    )
    assert "<dt><code>FROM_BUILD</code></dt><dd><code>1</code></dd>" in fragment.text
    assert "<code>&lt;yes&gt;</code>" in fragment.text
    rest = site.api.get(
        f"/v2/organizations/acme/pipelines/app/builds/1/jobs/{job['id']}/env"
    ).json()["env"]
    assert fragment.text.count("<dt>") == len(rest)
