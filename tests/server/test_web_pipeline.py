"""The pipeline's pages over HTTP: its builds (filters, pages, live block), "New Build" through
REST's build creation, settings through REST's pipeline update (errors beside their fields),
archive, unarchive, delete, CSRF, another organization's pipeline, escaping, web_urls."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.agent_protocol import ScriptedAgent
from tests.support.web import Site, csrf_token

STEPS = "steps:\n  - command: echo hi\n"
SHA = "0123456789abcdef0123456789abcdef01234567"


def post(site: Site, path: str, data: dict[str, Any]) -> httpx.Response:
    """A form posted as the browser posts it: with the session's CSRF token."""
    token = csrf_token(site.client.get("/acme").text)
    return site.client.post(path, data={"csrf_token": token, **data})


def build_numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li class="row build-row" id="build-(\d+)">', html)]


def test_the_page_lists_builds_with_what_users_wrote_escaped(site: Site) -> None:
    site.pipeline(
        "app",
        STEPS,
        name="<script>alert('name')</script>",
        repository="git@github.com:acme/app.git",
    )
    site.build(
        "app",
        commit=SHA,
        branch="<b>topic</b>",
        message="<script>alert(1)</script>\n\nsecond line",
        author={"name": "Ada <ada@example.com>"},
    )
    html = site.client.get("/acme/app").text
    assert "<script>alert" not in html
    assert "<h1>&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;</h1>" in html
    assert (
        '<a class="row-title" href="/acme/app/builds/1"><span class="build-number">#1</span>'
        " &lt;script&gt;alert(1)&lt;/script&gt;</a>"
    ) in html
    assert "second line" not in html
    assert '<span class="build-branch"><code>&lt;b&gt;topic&lt;/b&gt;</code></span>' in html
    assert (
        f'<a class="build-commit" href="https://github.com/acme/app/commit/{SHA}"'
        ' rel="noopener noreferrer"><code>0123456</code></a>'
    ) in html
    assert '<span class="build-author">by Ada &lt;ada@example.com&gt;</span>' in html
    assert '<span class="build-creator">created by Test User</span>' in html
    assert '<span class="build-source">via API</span>' in html
    assert '<span class="state state-scheduled">Scheduled</span>' in html
    assert "<title>&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt; · Acme</title>" in html
    assert "build-duration" not in html
    agent = ScriptedAgent.register(site.server.url, site.identity.agent_token)
    job = agent.take_job()
    running = site.client.get("/acme/app").text
    assert re.search(r'<span class="build-duration">running for (\d+[hms] ?)+</span>', running)
    agent.finish(job, "0").raise_for_status()
    passed = site.client.get("/acme/app").text
    assert re.search(r'<span class="build-duration">took (\d+[hms] ?)+</span>', passed)
    assert '<span class="state state-passed">Passed</span>' in passed


def test_builds_filter_by_branch_and_state(site: Site) -> None:
    site.pipeline("app", STEPS)
    site.build("app", branch="main")
    site.build("app", branch="feature/x")
    site.build("app", branch="feature/y")
    site.api.put("/v2/organizations/acme/pipelines/app/builds/2/cancel").raise_for_status()
    assert build_numbers(site.client.get("/acme/app").text) == [3, 2, 1]
    by_branch = site.client.get("/acme/app", params={"branch": "feature/*"}).text
    assert build_numbers(by_branch) == [3, 2]
    assert 'name="branch" type="search" placeholder="any branch (* matches)" value="feature/*"' in (
        by_branch
    )
    by_state = site.client.get("/acme/app", params={"state": "canceled"}).text
    assert build_numbers(by_state) == [2]
    assert '<option value="canceled" selected>Canceled</option>' in by_state
    both = site.client.get("/acme/app", params={"branch": "main", "state": "canceled"}).text
    assert build_numbers(both) == []
    assert "No builds match these filters." in both
    unknown = site.client.get("/acme/app", params={"state": "green"})
    assert unknown.status_code == 400
    assert "state must be one of" in unknown.text and "got &#39;green&#39;" in unknown.text


def test_builds_come_in_pages_that_keep_the_filters(site: Site) -> None:
    site.pipeline("app", STEPS)
    for _ in range(3):
        site.build("app")
    site.build("app", branch="other")
    first = site.client.get("/acme/app", params={"branch": "main", "per_page": 2}).text
    assert build_numbers(first) == [3, 2]
    assert '<a href="/acme/app?branch=main&amp;page=2&amp;per_page=2" rel="next">' in first
    assert 'rel="prev"' not in first
    second = site.client.get("/acme/app", params={"branch": "main", "page": 2, "per_page": 2}).text
    assert build_numbers(second) == [1]
    assert '<a href="/acme/app?branch=main&amp;per_page=2" rel="prev">Newer builds</a>' in second
    assert 'rel="next"' not in second
    # The live region refreshes the page the reader is on.
    assert 'hx-get="/acme/app?branch=main&amp;page=2&amp;per_page=2"' in second


def test_the_builds_block_is_rendered_alone_and_follows_the_pipeline(site: Site) -> None:
    site.pipeline("app", STEPS)
    pipeline_id = site.api.get("/v2/organizations/acme/pipelines/app").json()["id"]
    page = site.client.get("/acme/app").text
    assert re.search(
        rf'data-live-url="/organizations/acme/live\?pipeline={pipeline_id}&amp;after=\d+"', page
    )
    assert "No builds yet" in page
    site.build("app")
    fragment = site.client.get("/acme/app", headers={"HX-Request": "true", "HX-Target": "builds"})
    assert fragment.status_code == 200
    assert fragment.text.startswith('<section id="builds"')
    assert "<html" not in fragment.text
    assert build_numbers(fragment.text) == [1]


def test_new_build_shows_the_apis_errors_in_its_dialog_and_keeps_the_values(site: Site) -> None:
    site.pipeline("app", STEPS, default_branch="trunk")
    page = site.client.get("/acme/app").text
    assert '<input id="build-commit" name="commit" value="HEAD">' in page
    assert '<input id="build-branch" name="branch" value="trunk">' in page
    assert "data-reopen" not in page
    blank = post(site, "/acme/app/builds", {"message": "<i>m</i>", "commit": " ", "branch": "b"})
    assert blank.status_code == 422
    assert "data-reopen" in blank.text
    assert '<span class="field-error" id="commit-error">Commit can&#39;t be blank</span>' in (
        blank.text
    )
    assert 'value="&lt;i&gt;m&lt;/i&gt;"' in blank.text
    bad_env = post(
        site,
        "/acme/app/builds",
        {"commit": "HEAD", "branch": "main", "env": "GOOD=1\nnot a pair\n"},
    )
    assert bad_env.status_code == 422
    assert (
        '<span class="field-error" id="env-error">Environment variables must be KEY=value'
        " strings, got &#39;not a pair&#39;</span>"
    ) in bad_env.text
    assert ">GOOD=1\nnot a pair\n</textarea>" in bad_env.text
    assert site.api.get("/v2/organizations/acme/pipelines/app/builds").json() == []


def test_new_build_creates_the_build_as_rest_does_and_opens_it(site: Site) -> None:
    site.pipeline("app", STEPS)
    created = post(
        site,
        "/acme/app/builds",
        {
            "message": "Ship it",
            "commit": SHA,
            "branch": "release",
            "env": "A=1\r\n\r\nB=two=2\r\n",
        },
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/acme/app/builds/1"
    build = site.rest("app", 1)
    assert (build["message"], build["commit"], build["branch"]) == ("Ship it", SHA, "release")
    assert build["env"] == {"A": "1", "B": "two=2"}
    assert build["source"] == "ui"
    assert build["creator"]["email"] == site.identity.email
    assert build["author"] == {"name": "Test User", "email": site.identity.email}
    assert [job["state"] for job in build["jobs"]] == ["scheduled"]


def test_an_archived_pipeline_refuses_new_builds_in_the_dialog(site: Site) -> None:
    site.pipeline("app", STEPS)
    site.api.post("/v2/organizations/acme/pipelines/app/archive").raise_for_status()
    page = site.client.get("/acme/app").text
    assert "Archived: no new builds until it is unarchived." in page
    assert 'data-open-dialog="new-build-dialog" disabled>New Build</button>' in page
    refused = post(site, "/acme/app/builds", {"commit": "HEAD", "branch": "main"})
    assert refused.status_code == 422
    assert (
        '<p class="flash error" role="alert">Builds can&#39;t be created for an archived'
        " pipeline</p>"
    ) in refused.text


def test_settings_show_the_apis_errors_beside_their_fields(site: Site) -> None:
    site.pipeline("app", STEPS, description="Old", repository="https://example.com/app.git")
    page = site.client.get("/acme/app/settings").text
    assert '<input id="pipeline-name" name="name" value="App">' in page
    assert ">steps:\n  - command: echo hi\n</textarea>" in page
    typed = {
        "name": "Renamed <b>",
        "description": "New",
        "repository": "git@github.com:acme/app.git",
        "default_branch": "trunk",
        "configuration": "steps:\n  - commandx: echo <hi>\n",
    }
    refused = post(site, "/acme/app/settings", typed)
    assert refused.status_code == 422
    error = re.search(r'<span class="field-error" id="configuration-error">([^<]*)<', refused.text)
    assert error is not None
    assert error.group(1) == (
        "Steps: Step 1: has none of the keys that make a step (command, wait, block, input,"
        " trigger or group); did you mean &#34;command&#34;?"
    )
    assert 'aria-invalid="true" aria-describedby="configuration-error steps-hint"' in refused.text
    assert ">steps:\n  - commandx: echo &lt;hi&gt;\n</textarea>" in refused.text
    assert 'value="Renamed &lt;b&gt;"' in refused.text
    unchanged = site.api.get("/v2/organizations/acme/pipelines/app").json()
    assert (unchanged["name"], unchanged["description"]) == ("App", "Old")
    blank = post(site, "/acme/app/settings", {**typed, "name": " ", "configuration": STEPS})
    assert blank.status_code == 422
    assert '<span class="field-error" id="name-error">Name can&#39;t be blank</span>' in blank.text


def test_settings_save_through_the_pipeline_update(site: Site) -> None:
    site.pipeline("app", STEPS)
    saved = post(
        site,
        "/acme/app/settings",
        {
            "name": "Renamed",
            "description": "",
            "repository": "git@github.com:acme/app.git",
            "default_branch": "trunk",
            "configuration": "steps:\n  - command: make test\n",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/acme/app/settings?saved=1"
    pipeline = site.api.get("/v2/organizations/acme/pipelines/app").json()
    assert pipeline["name"] == "Renamed"
    assert pipeline["description"] is None
    assert pipeline["repository"] == "git@github.com:acme/app.git"
    assert pipeline["default_branch"] == "trunk"
    assert pipeline["configuration"] == "steps:\n  - command: make test\n"
    shown = site.client.get(saved.headers["location"]).text
    assert '<p class="flash success" role="status">Saved.</p>' in shown


def test_archive_and_unarchive(site: Site) -> None:
    site.pipeline("app", STEPS)
    assert ">Archive</button>" in site.client.get("/acme/app/settings").text
    archived = post(site, "/acme/app/settings/archive", {})
    assert archived.status_code == 303
    assert archived.headers["location"] == "/acme/app/settings"
    assert site.api.get("/v2/organizations/acme/pipelines/app").json()["archived_at"] is not None
    assert ">Unarchive</button>" in site.client.get("/acme/app/settings").text
    assert post(site, "/acme/app/settings/archive", {}).status_code == 422
    assert post(site, "/acme/app/settings/unarchive", {}).status_code == 303
    assert site.api.get("/v2/organizations/acme/pipelines/app").json()["archived_at"] is None


def test_delete_needs_the_slug_typed(site: Site) -> None:
    site.pipeline("app", STEPS)
    site.build("app")
    refused = post(site, "/acme/app/settings/delete", {"confirm": "ap"})
    assert refused.status_code == 422
    assert "Type “app” to confirm: the pipeline was not deleted" in refused.text
    assert site.api.get("/v2/organizations/acme/pipelines/app").status_code == 200
    deleted = post(site, "/acme/app/settings/delete", {"confirm": "app"})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/acme"
    assert site.api.get("/v2/organizations/acme/pipelines/app").status_code == 404
    assert site.client.get("/acme/app").status_code == 404


def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    site.pipeline("app", STEPS)
    for path, data in (
        ("/acme/app/builds", {"commit": "HEAD", "branch": "main"}),
        ("/acme/app/settings", {"name": "Hijacked", "configuration": STEPS}),
        ("/acme/app/settings/archive", {}),
        ("/acme/app/settings/delete", {"confirm": "app"}),
    ):
        refused = site.client.post(path, data=data)
        assert refused.status_code == 403, path
        wrong = site.client.post(path, data={**data, "csrf_token": "0" * 64})
        assert wrong.status_code == 403, path
    pipeline = site.api.get("/v2/organizations/acme/pipelines/app").json()
    assert (pipeline["name"], pipeline["archived_at"]) == ("App", None)
    assert site.api.get("/v2/organizations/acme/pipelines/app/builds").json() == []


def test_another_organizations_pipeline_is_a_404(site: Site) -> None:
    other = site.server.identity("globex")
    other_api = site.server.client(other.api_token)
    other_api.post(
        "/v2/organizations/globex/pipelines", json={"name": "Secret", "configuration": STEPS}
    ).raise_for_status()
    for path in ("/globex/secret", "/globex/secret/settings", "/acme/secret"):
        response = site.client.get(path)
        assert response.status_code == 404, path
        assert "Secret" not in response.text
    token = csrf_token(site.client.get("/acme").text)
    for path in ("/globex/secret/builds", "/globex/secret/settings/delete"):
        data = {"csrf_token": token, "commit": "HEAD", "branch": "main", "confirm": "secret"}
        assert site.client.post(path, data=data).status_code == 404, path
    assert other_api.get("/v2/organizations/globex/pipelines/secret/builds").json() == []


def test_every_web_url_rest_gives_opens_a_page(site: Site) -> None:
    site.pipeline("app", STEPS)
    build = site.build("app")
    pipeline = site.api.get("/v2/organizations/acme/pipelines/app").json()
    listed = site.client.get("/acme").text
    assert '<a class="row-title" href="/acme/app">App</a>' in listed
    urls = [
        pipeline["web_url"],
        build["web_url"],
        *(job["web_url"] for job in build["jobs"]),
        build["pipeline"]["web_url"],
    ]
    assert pipeline["web_url"] == f"{site.server.url}/acme/app"
    for url in urls:
        response = site.client.get(url.split("#")[0])
        assert response.status_code == 200, url
    assert site.client.get("/acme/app/builds").headers["location"] == "/acme/app"
