"""The organization's pipelines page over HTTP: each pipeline's last builds (state bars in
order, linked, titled, escaped), its latest build, many pipelines, and "New Pipeline" through
REST's pipeline create (errors inline with what was typed, CSRF, another organization)."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta

from kiteline.server.web.pages.organizations import ago
from tests.server.test_graphql_batching import counted_statements
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer
from tests.support.web import Site, csrf_token, give_password, signed_in

STEPS = "steps:\n  - command: echo hi\n"
BAR = re.compile(r'<a class="bar bar-([a-z_]+)" href="([^"]+)" title="([^"]*)">')
NEW = "/organizations/acme/pipelines/new"


def bars(html: str, slug: str) -> list[tuple[str, str, str]]:
    """The state bars of one pipeline's row: (state, link, title), oldest first."""
    row = html.split(f'<li class="row pipeline" id="pipeline-{slug}">', 1)[1]
    return BAR.findall(row.split('<li class="row pipeline"', 1)[0])


def test_each_pipeline_shows_its_last_builds_states_and_latest_build(site: Site) -> None:
    site.pipeline("app", STEPS)
    site.pipeline("idle", STEPS)
    agent = ScriptedAgent.register(site.server.url, site.identity.agent_token)
    site.build("app", message="Green")
    agent.finish(agent.take_job(), "0").raise_for_status()
    site.build("app", message="Red\n\nmore")
    agent.finish(agent.take_job(), "1").raise_for_status()
    site.build("app", message="Stopped")
    site.api.put("/v2/organizations/acme/pipelines/app/builds/3/cancel").raise_for_status()
    site.build("app", message="Going")
    agent.take_job()
    site.build("app", branch="<b>topic</b>", message="<script>alert(1)</script>\nsecond line")
    html = site.client.get("/acme").text
    assert bars(html, "app") == [
        ("passed", "/acme/app/builds/1", "#1 passed Green"),
        ("failed", "/acme/app/builds/2", "#2 failed Red"),
        ("canceled", "/acme/app/builds/3", "#3 canceled Stopped"),
        ("running", "/acme/app/builds/4", "#4 running Going"),
        ("scheduled", "/acme/app/builds/5", "#5 scheduled &lt;script&gt;alert(1)&lt;/script&gt;"),
    ]
    assert "<script>alert" not in html
    assert "second line" not in html
    assert (
        '<p class="row-note latest-build"><span class="state state-scheduled">Scheduled</span>'
        ' <a href="/acme/app/builds/5">&lt;script&gt;alert(1)&lt;/script&gt;</a>'
        ' <code class="build-branch">&lt;b&gt;topic&lt;/b&gt;</code>'
        ' <span class="latest-time">Created <time data-ago datetime="'
    ) in html
    assert '<span class="count" data-count="running">1 running</span>' in html
    assert '<span class="count" data-count="scheduled">1 scheduled</span>' in html
    assert bars(html, "idle") == []
    idle = html.split('id="pipeline-idle"', 1)[1].split("</li>", 1)[0]
    assert '<p class="row-note latest-build">No builds yet</p>' in idle
    # The live block carries the same rows.
    block = site.client.get("/acme", headers={"HX-Request": "true", "HX-Target": "pipelines"})
    assert block.text.startswith('<section id="pipelines"')
    assert bars(block.text, "app") == bars(html, "app")


def test_twenty_pipelines_show_their_last_ten_builds(site: Site) -> None:
    for n in range(20):
        site.pipeline(f"p{n:02}", STEPS)
    for _ in range(12):
        site.build("p07", message="Again")
    html = site.client.get("/acme").text
    assert len(re.findall(r'<li class="row pipeline" id="pipeline-p\d\d">', html)) == 20
    shown = bars(html, "p07")
    assert [link for _state, link, _title in shown] == [
        f"/acme/p07/builds/{n}" for n in range(3, 13)
    ]
    assert {state for state, _link, _title in shown} == {"scheduled"}
    assert sum(len(bars(html, f"p{n:02}")) for n in range(20)) == 10


def test_the_page_reads_as_many_statements_for_one_pipeline_as_for_twenty(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(run_workers=False)
    identity = server.identity("acme")
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as client:
        site = Site(server, identity, client)
        counts = []
        for first, last in ((0, 1), (1, 20)):
            for n in range(first, last):
                site.pipeline(f"p{n:02}", STEPS)
                for _ in range(3):
                    site.build(f"p{n:02}")
            with counted_statements(server) as statements:
                html = client.get("/acme").text
            counts.append(len(statements))
            assert html.count('<a class="bar bar-scheduled"') == 3 * last
    assert counts[0] == counts[1], counts


def test_times_read_as_how_long_ago() -> None:
    now = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)
    assert [
        ago(now - timedelta(seconds=seconds), now)
        for seconds in (-5, 0, 59, 60, 119, 3599, 3600, 7200, 86399, 86400, 3 * 86400)
    ] == [
        "just now",
        "just now",
        "just now",
        "1 minute ago",
        "1 minute ago",
        "59 minutes ago",
        "1 hour ago",
        "2 hours ago",
        "23 hours ago",
        "1 day ago",
        "3 days ago",
    ]


def test_new_pipeline_creates_it_as_rest_does_and_opens_it(site: Site) -> None:
    page = site.client.get("/acme").text
    assert f'<a class="button primary" href="{NEW}">New Pipeline</a>' in page
    form = site.client.get(NEW).text
    assert '<label for="pipeline-name">Name</label>' in form
    assert "command: echo &#34;Hello, world!&#34;" in form
    response = site.client.post(
        NEW,
        data={
            "csrf_token": csrf_token(form),
            "name": "My App",
            "repository": "git@github.com:acme/app.git",
            "configuration": STEPS,
            "description": "The app",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/acme/my-app"
    made = site.api.get("/v2/organizations/acme/pipelines/my-app").json()
    assert (made["name"], made["repository"], made["description"]) == (
        "My App",
        "git@github.com:acme/app.git",
        "The app",
    )
    assert made["configuration"] == STEPS
    assert made["created_by"]["email"] == site.identity.email


def test_a_refused_pipeline_is_shown_with_what_was_typed(site: Site) -> None:
    site.pipeline("app", STEPS)
    token = csrf_token(site.client.get(NEW).text)
    taken = site.client.post(
        NEW,
        data={"csrf_token": token, "name": "App", "configuration": STEPS, "repository": "r<x>"},
    )
    assert taken.status_code == 422
    assert '<span class="field-error" id="name-error">Name has already been taken</span>' in (
        taken.text
    )
    assert 'value="r&lt;x&gt;"' in taken.text
    bad = site.client.post(
        NEW, data={"csrf_token": token, "name": "Other", "configuration": "steps: [[[\n"}
    )
    assert bad.status_code == 422
    assert 'id="configuration-error">Steps:' in bad.text
    assert "steps: [[[\n</textarea>" in bad.text
    assert 'value="Other"' in bad.text
    assert [p["slug"] for p in site.api.get("/v2/organizations/acme/pipelines").json()] == ["app"]


def test_new_pipeline_needs_csrf_and_the_viewers_organization(site: Site) -> None:
    refused = site.client.post(NEW, data={"name": "X", "configuration": STEPS})
    assert refused.status_code == 403
    site.server.identity("other")
    token = csrf_token(site.client.get(NEW).text)
    other = "/organizations/other/pipelines/new"
    assert site.client.get(other).status_code == 404
    posted = site.client.post(
        other, data={"csrf_token": token, "name": "X", "configuration": STEPS}
    )
    assert posted.status_code == 404
    assert site.api.get("/v2/organizations/acme/pipelines").json() == []
