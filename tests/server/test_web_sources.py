"""The pipeline's source and schedules on the web, over HTTP: the settings page's provider,
webhook URL and the deliveries a signed GitHub push made; `/{org}/{pipeline}/settings/schedules`
creating (an invalid cronline beside its field), disabling, enabling and deleting through the
schedules service; CSRF; another organization's pipeline; escaping."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.server.test_source_webhooks import SECRET, github_headers, github_push
from tests.support.web import Site, csrf_token

STEPS = "steps:\n  - command: echo hi\n"
SCHEDULES = "/acme/app/settings/schedules"
SCHEDULES_QUERY = """
query { pipeline(slug: "acme/app") { schedules { edges { node {
  label cronline branch commit message env enabled
} } } } }
"""
CREATE = """
mutation ($id: ID!) { pipelineScheduleCreate(input: {pipelineID: $id, cronline: "@daily"}) {
  pipelineScheduleEdge { node { uuid } }
} }
"""


def post(site: Site, path: str, data: dict[str, Any]) -> httpx.Response:
    """A form posted as the browser posts it: with the session's CSRF token."""
    token = csrf_token(site.client.get("/acme").text)
    return site.client.post(path, data={"csrf_token": token, **data})


def schedule_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="schedule-([0-9a-f-]{36})">', html)


def graphql_schedules(site: Site) -> list[dict[str, Any]]:
    response = site.api.post("/v1", json={"query": SCHEDULES_QUERY})
    assert response.status_code == 200, response.text
    edges = response.json()["data"]["pipeline"]["schedules"]["edges"]
    return [edge["node"] for edge in edges]


def test_settings_show_the_provider_webhook_url_and_a_pushs_delivery(site: Site) -> None:
    site.pipeline(
        "app",
        STEPS,
        repository="git@github.com:acme/app.git",
        provider_settings={"webhook_secret": SECRET},
    )
    rest = site.api.get("/v2/organizations/acme/pipelines/app").json()
    webhook_url = rest["provider"]["webhook_url"]
    assert webhook_url.startswith(site.server.url + "/deliver/")
    before = site.client.get("/acme/app/settings").text
    assert '<p>Provider: <code class="provider-id">github</code></p>' in before
    assert f'<input id="webhook-url" class="code-input" value="{webhook_url}" readonly' in before
    assert "Settings → Webhooks → Add webhook, content type <code>application/json</code>" in before
    assert "Nothing received yet." in before
    assert f'<a href="{SCHEDULES}">Schedules</a>' in before
    payload = github_push()
    delivered = httpx.post(
        webhook_url,
        content=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **github_headers("push", payload)},
        timeout=30,
    )
    assert delivered.status_code == 201, delivered.text
    after = site.client.get("/acme/app/settings").text
    rows = re.findall(r"<tr>\s*(<td.*?)\s*</tr>", after, re.S)
    assert len(rows) == 1
    row = rows[0]
    assert '<td data-label="Provider">github</td>' in row
    assert '<td data-label="Event"><code class="event">push</code></td>' in row
    assert '<span class="outcome outcome-built">built</span>' in row
    assert '<td data-label="Build"><a href="/acme/app/builds/1">#1</a></td>' in row
    assert re.search(r'<td data-label="Received"><time datetime="[^"]+"', row)


def test_schedules_are_created_listed_disabled_enabled_and_deleted(site: Site) -> None:
    site.pipeline("app", STEPS, name="<i>App</i>")
    empty = site.client.get(SCHEDULES)
    assert empty.status_code == 200
    assert "No schedules yet." in empty.text
    assert "<h1>&lt;i&gt;App&lt;/i&gt;</h1>" in empty.text
    assert '<input id="schedule-branch" name="branch" value="main"' in empty.text
    created = post(
        site,
        SCHEDULES,
        {
            "label": "<b>Nightly</b>",
            "cronline": "0 2 * * * Europe/Berlin",
            "branch": "release",
            "commit": "HEAD",
            "message": "Nightly build",
            "env": "FOO=bar\r\nMODE=full\r\n",
            "enabled": "1",
        },
    )
    assert created.status_code == 303
    assert created.headers["location"] == SCHEDULES
    assert graphql_schedules(site) == [
        {
            "label": "<b>Nightly</b>",
            "cronline": "0 2 * * * Europe/Berlin",
            "branch": "release",
            "commit": "HEAD",
            "message": "Nightly build",
            "env": ["FOO=bar", "MODE=full"],
            "enabled": True,
        }
    ]
    listed = site.client.get(SCHEDULES).text
    (schedule_id,) = schedule_ids(listed)
    assert '<td data-label="Label">&lt;b&gt;Nightly&lt;/b&gt;</td>' in listed
    assert '<td data-label="Cronline"><code>0 2 * * * Europe/Berlin</code></td>' in listed
    assert '<td data-label="Branch"><code>release</code></td>' in listed
    assert '<td data-label="Enabled">Yes</td>' in listed
    assert re.search(r'<td data-label="Next build"><time datetime="[^"]+T0[01]:00:00', listed)
    assert '<td data-label="Last failure">—</td>' in listed
    assert "<b>Nightly</b>" not in listed

    disabled = post(site, f"{SCHEDULES}/{schedule_id}/disable", {})
    assert disabled.status_code == 303
    page = site.client.get(SCHEDULES).text
    assert '<td data-label="Enabled">No</td>' in page
    assert '<td data-label="Next build">—</td>' in page
    assert 'aria-label="Enable &lt;b&gt;Nightly&lt;/b&gt;">Enable</button>' in page
    assert graphql_schedules(site)[0]["enabled"] is False
    assert post(site, f"{SCHEDULES}/{schedule_id}/enable", {}).status_code == 303
    assert graphql_schedules(site)[0]["enabled"] is True

    deleted = post(site, f"{SCHEDULES}/{schedule_id}/delete", {})
    assert deleted.status_code == 303
    assert graphql_schedules(site) == []
    assert schedule_ids(site.client.get(SCHEDULES).text) == []


def test_an_invalid_cronline_is_shown_beside_it_with_what_was_typed(site: Site) -> None:
    site.pipeline("app", STEPS)
    refused = post(
        site,
        SCHEDULES,
        {
            "label": "Weekly <x>",
            "cronline": "every tuesday",
            "branch": "main",
            "commit": "abc123",
            "message": "Hi",
            "env": "A=1",
        },
    )
    assert refused.status_code == 422
    html = refused.text
    assert (
        '<input id="schedule-cronline" name="cronline" value="every tuesday"'
        ' placeholder="0 2 * * * Europe/Berlin, @daily" spellcheck="false"'
        ' aria-invalid="true" aria-describedby="cronline-error">'
    ) in html
    assert (
        '<span class="field-error" id="cronline-error">Cronline &#39;every tuesday&#39; is not'
        " a cron line: expected five fields"
    ) in html
    assert '<input id="schedule-label" name="label" value="Weekly &lt;x&gt;">' in html
    assert '<input id="schedule-commit" name="commit" value="abc123"' in html
    assert ">A=1</textarea>" in html
    assert '<input type="checkbox" name="enabled" value="1"> Enabled' in html  # unticked, kept
    bad_env = post(site, SCHEDULES, {"cronline": "@daily", "env": "NOT A PAIR", "enabled": "1"})
    assert bad_env.status_code == 422
    assert (
        '<span class="field-error" id="env-error">Environment variables: &#39;NOT A PAIR&#39;'
        " is not KEY=value</span>"
    ) in bad_env.text
    assert graphql_schedules(site) == []


def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    site.pipeline("app", STEPS)
    assert post(site, SCHEDULES, {"cronline": "@daily", "enabled": "1"}).status_code == 303
    (schedule_id,) = schedule_ids(site.client.get(SCHEDULES).text)
    for path, data in (
        (SCHEDULES, {"cronline": "@hourly", "enabled": "1"}),
        (f"{SCHEDULES}/{schedule_id}/disable", {}),
        (f"{SCHEDULES}/{schedule_id}/delete", {}),
    ):
        assert site.client.post(path, data=data).status_code == 403, path
        wrong = site.client.post(path, data={**data, "csrf_token": "0" * 64})
        assert wrong.status_code == 403, path
    (kept,) = graphql_schedules(site)
    assert (kept["cronline"], kept["enabled"]) == ("@daily", True)


def test_another_organizations_pipeline_and_schedules_are_a_404(site: Site) -> None:
    site.pipeline("app", STEPS)
    other = site.server.identity("globex")
    other_api = site.server.client(other.api_token)
    other_api.post(
        "/v2/organizations/globex/pipelines", json={"name": "Secret", "configuration": STEPS}
    ).raise_for_status()
    for path in ("/globex/secret/settings/schedules", "/acme/secret/settings/schedules"):
        response = site.client.get(path)
        assert response.status_code == 404, path
        assert "Secret" not in response.text
    pipeline_id = other_api.get("/v2/organizations/globex/pipelines/secret").json()["graphql_id"]
    created = other_api.post("/v1", json={"query": CREATE, "variables": {"id": pipeline_id}})
    assert created.status_code == 200, created.text
    edge = created.json()["data"]["pipelineScheduleCreate"]["pipelineScheduleEdge"]
    their_id = edge["node"]["uuid"]
    token = csrf_token(site.client.get("/acme").text)
    for path in (
        "/globex/secret/settings/schedules",
        f"/globex/secret/settings/schedules/{their_id}/delete",
        f"{SCHEDULES}/{their_id}/delete",  # another pipeline's schedule under ours
        f"{SCHEDULES}/{their_id}/disable",
        f"{SCHEDULES}/not-a-uuid/delete",
    ):
        response = site.client.post(path, data={"csrf_token": token, "cronline": "@daily"})
        assert response.status_code == 404, path
