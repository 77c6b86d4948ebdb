"""The agents pages over HTTP: the connected agents with their tags and current jobs, one
agent's page (REST's web_url), "Stop Agent" through the service REST's stop uses, another
organization's agents, and the CSRF token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer, pipeline_with_a_build
from tests.support.web import SignedIn, csrf_token, signed_in_site

AGENTS = "/organizations/acme/agents"


class Site(SignedIn):
    def agent(self, **fields: object) -> ScriptedAgent:
        return ScriptedAgent.register(self.server.url, self.identity.agent_token, **fields)

    def running_job(self, agent: ScriptedAgent) -> dict[str, object]:
        """A build of pipeline `deploy` whose one job `agent` runs."""
        steps = "steps:\n  - label: Ship <it>\n    command: ./ship\n"
        pipeline_with_a_build(self.api, steps, name="Deploy")
        return agent.take_job()

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        return self.client.post(
            path + "/stop", data={"csrf_token": csrf_token(page.text), **(data or {})}
        )


@pytest.fixture
def site(server: LiveServer) -> Iterator[Site]:
    with signed_in_site(server, Site) as site:
        yield site


def test_the_list_shows_connected_agents_with_tags_version_and_current_job(site: Site) -> None:
    busy = site.agent(
        name="<b>builder</b>",
        hostname="host-1",
        version="3.99.0",
        meta_data=["queue=default", "os=linux"],
    )
    idle = site.agent(name="idle-one", hostname="host-2")
    stopped = site.agent(name="gone")
    stopped.call("POST", "/disconnect").raise_for_status()
    job = site.running_job(busy)

    page = site.client.get(AGENTS)

    assert page.status_code == 200
    html = page.text
    assert f'<a class="row-title" href="{AGENTS}/{busy.id}">&lt;b&gt;builder&lt;/b&gt;</a>' in html
    assert f'<a class="row-title" href="{AGENTS}/{idle.id}">idle-one</a>' in html
    assert "gone" not in html  # disconnected agents are not listed, as REST lists them
    assert '<span class="state connection-connected">Connected</span>' in html
    assert '<span class="agent-hostname">host-1</span>' in html
    assert '<span class="agent-version">v3.99.0</span>' in html
    assert '<li class="tag">os=linux</li>' in html
    assert f'<a href="/acme/deploy/builds/1#{job["id"]}">Ship &lt;it&gt;</a>' in html
    assert "2 connected agents" in html


def test_the_list_is_a_live_region(site: Site) -> None:
    site.agent(name="live-one")
    fragment = site.client.get(AGENTS, headers={"HX-Request": "true", "HX-Target": "agents"})
    assert fragment.status_code == 200
    assert fragment.text.startswith('<section id="agents"')
    assert "live-one" in fragment.text
    assert "<html" not in fragment.text


def test_the_rest_web_url_opens_the_agents_page_with_its_job(site: Site) -> None:
    agent = site.agent(name="runner", hostname="host-9", meta_data=["queue=default"])
    job = site.running_job(agent)
    rest = site.api.get(f"/v2/organizations/acme/agents/{agent.id}").json()
    assert rest["web_url"] == f"{site.server.url}{AGENTS}/{agent.id}"

    page = site.client.get(rest["web_url"])

    assert page.status_code == 200
    assert "<h1>runner" in page.text
    assert f'href="/acme/deploy/builds/1#{job["id"]}"' in page.text
    assert "<dt>Hostname</dt><dd>host-9</dd>" in page.text
    assert '<button type="submit" class="danger">Stop Agent</button>' in page.text
    assert page.text.count(f'href="/acme/deploy/builds/1#{job["id"]}"') == 2  # current, recent


def test_stop_agent_cancels_its_job_and_tells_it_to_disconnect(site: Site) -> None:
    agent = site.agent(name="runner")
    job = site.running_job(agent)

    stopped = site.post(f"{AGENTS}/{agent.id}")

    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"{AGENTS}/{agent.id}"
    rest = site.api.get(f"/v2/organizations/acme/agents/{agent.id}").json()
    assert rest["connection_state"] == "stopping"
    build = site.api.get("/v2/organizations/acme/pipelines/deploy/builds/1").json()
    assert [j["state"] for j in build["jobs"]] == ["canceling"]
    assert build["jobs"][0]["id"] == job["id"]
    page = site.client.get(f"{AGENTS}/{agent.id}").text
    assert '<span class="state connection-stopping">Stopping</span>' in page
    assert "Stop Agent" not in page


def test_stop_agent_after_the_current_job_leaves_the_job_running(site: Site) -> None:
    agent = site.agent(name="runner")
    site.running_job(agent)

    assert site.post(f"{AGENTS}/{agent.id}", {"graceful": "true"}).status_code == 303

    build = site.api.get("/v2/organizations/acme/pipelines/deploy/builds/1").json()
    assert [j["state"] for j in build["jobs"]] == ["running"]
    assert agent.ping()["action"] == "disconnect"


def test_stopping_an_idle_agent_lets_its_next_ping_disconnect_it(site: Site) -> None:
    agent = site.agent(name="idle")
    assert site.post(f"{AGENTS}/{agent.id}").status_code == 303
    assert agent.ping()["action"] == "disconnect"
    agent.call("POST", "/disconnect").raise_for_status()
    page = site.client.get(f"{AGENTS}/{agent.id}").text
    assert '<span class="state connection-stopped">Stopped</span>' in page
    assert "idle" not in site.client.get(AGENTS).text


def test_stop_without_the_csrf_token_is_refused(site: Site) -> None:
    agent = site.agent(name="runner")
    refused = site.client.post(f"{AGENTS}/{agent.id}/stop", data={})
    assert refused.status_code == 403
    rest = site.api.get(f"/v2/organizations/acme/agents/{agent.id}").json()
    assert rest["connection_state"] == "connected"


def test_another_organizations_agents_are_404(site: Site) -> None:
    other = site.server.identity("other")
    theirs = ScriptedAgent.register(site.server.url, other.agent_token, name="theirs")
    form = site.client.get(AGENTS).text
    for path in (
        "/organizations/other/agents",
        f"/organizations/other/agents/{theirs.id}",
        f"{AGENTS}/{theirs.id}",
        f"{AGENTS}/not-a-uuid",
    ):
        assert site.client.get(path).status_code == 404, path
    stop = site.client.post(f"{AGENTS}/{theirs.id}/stop", data={"csrf_token": csrf_token(form)})
    assert stop.status_code == 404
    rest = site.server.client(other.api_token).get(f"/v2/organizations/other/agents/{theirs.id}")
    assert rest.json()["connection_state"] == "connected"
