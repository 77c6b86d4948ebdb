"""Build status badges: `badge_url` (REST and GraphQL) resolves without sign-in to an SVG of
the newest build's state, `?branch=` scoping it; an unknown key is a 404."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import httpx
import pytest

from kiteline.server.web.badges import badge_svg, status_of, text_width
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer

STEPS = "steps:\n  - command: echo hi\n"
SVG = "{http://www.w3.org/2000/svg}"


def svg_status(response: httpx.Response) -> tuple[str, str]:
    """The badge's status word and its colour, read from the SVG."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    root = ElementTree.fromstring(response.text)
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert texts[:2] == ["build", "build"]
    status = texts[2]
    assert texts[3] == status
    assert root.attrib["aria-label"] == f"build: {status}"
    fills = [rect.attrib.get("fill") for rect in root.iter(f"{SVG}rect")]
    return str(status), str(fills[2])


def test_badge_urls_are_random_and_the_same_in_rest_and_graphql(server: LiveServer) -> None:
    identity = server.identity("acme")
    api = server.client(identity.api_token)
    urls = []
    for name in ("One", "Two"):
        created = api.post(
            "/v2/organizations/acme/pipelines", json={"name": name, "configuration": STEPS}
        )
        urls.append(created.json()["badge_url"])
    for url in urls:
        assert re.fullmatch(rf"{re.escape(server.url)}/badges/[0-9a-f]{{50}}\.svg", url)
    assert urls[0] != urls[1]
    assert api.get("/v2/organizations/acme/pipelines/one").json()["badge_url"] == urls[0]
    query = '{ pipeline(slug: "acme/one") { badgeURL } }'
    answer = api.post("/v1", json={"query": query}).json()
    assert answer == {"data": {"pipeline": {"badgeURL": urls[0]}}}


def test_the_badge_shows_the_newest_builds_state_per_branch(server: LiveServer) -> None:
    identity = server.identity("acme")
    api = server.client(identity.api_token)
    created = api.post(
        "/v2/organizations/acme/pipelines", json={"name": "App", "configuration": STEPS}
    )
    badge = created.json()["badge_url"]
    anonymous = httpx.Client(timeout=30)  # no session, no token

    def status(branch: str | None = None) -> tuple[str, str]:
        return svg_status(anonymous.get(badge, params={"branch": branch} if branch else None))

    def build(branch: str) -> None:
        api.post(
            "/v2/organizations/acme/pipelines/app/builds",
            json={"commit": "HEAD", "branch": branch},
        ).raise_for_status()

    first = anonymous.get(badge)
    assert first.headers["cache-control"] == "no-cache, no-store, must-revalidate, max-age=0"
    assert first.headers["content-security-policy"].startswith("default-src 'none'")
    assert status() == ("unknown", "#9f9f9f")
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    build("main")
    assert status() == ("scheduled", "#dfb317")
    job = agent.take_job()
    assert status() == ("running", "#dfb317")
    agent.finish(job, "0").raise_for_status()
    assert status() == ("passing", "#44cc11")
    build("feature")
    agent.finish(agent.take_job(), "1").raise_for_status()
    assert status() == ("failing", "#e05d44")
    assert status("main") == ("passing", "#44cc11")
    assert status("feature") == ("failing", "#e05d44")
    assert status("feat*") == ("failing", "#e05d44")
    assert status("nowhere") == ("unknown", "#9f9f9f")
    build("other")
    api.put("/v2/organizations/acme/pipelines/app/builds/3/cancel").raise_for_status()
    assert status("other") == ("canceled", "#9f9f9f")
    json_url = badge.removesuffix(".svg") + ".json"
    assert anonymous.get(json_url, params={"branch": "main"}).json() == {"status": "passing"}
    square = anonymous.get(badge, params={"style": "square"}).text
    assert 'rx="0"' in square
    assert "linearGradient" not in square


@pytest.mark.parametrize("accept", ["image/*", "text/html"])
def test_an_unknown_badge_is_a_404(server: LiveServer, accept: str) -> None:
    identity = server.identity("acme")
    api = server.client(identity.api_token)
    badge = api.post(
        "/v2/organizations/acme/pipelines", json={"name": "App", "configuration": STEPS}
    ).json()["badge_url"]
    key = badge.rsplit("/", 1)[1].removesuffix(".svg")
    headers = {"Accept": accept}
    for path in (
        f"/badges/{'0' * 50}.svg",
        f"/badges/{key[:-1]}.svg",
        f"/badges/{key}.png",
        f"/badges/{key}",
        "/badges/.svg",
    ):
        response = httpx.get(f"{server.url}{path}", headers=headers)
        assert response.status_code == 404, path
        if accept == "text/html":
            assert "No badge found" in response.text
        else:
            assert response.json() == {"message": "No badge found"}
    assert httpx.get(badge).status_code == 200
    api.delete("/v2/organizations/acme/pipelines/app").raise_for_status()
    assert httpx.get(badge).status_code == 404


def test_a_badge_is_sized_to_its_words() -> None:
    assert status_of(None) == "unknown"
    assert status_of("not_run") == "not run"
    passing = ElementTree.fromstring(badge_svg("passing"))
    label, status = list(passing.iter(f"{SVG}rect"))[1:3]
    assert int(label.attrib["width"]) == text_width("build") + 10
    assert int(status.attrib["width"]) == text_width("passing") + 10
    assert status.attrib["x"] == label.attrib["width"]
    assert int(passing.attrib["width"]) == int(label.attrib["width"]) + int(status.attrib["width"])
    assert (text_width("build"), text_width("passing")) == (27, 42)
    assert passing.attrib["width"] == "89"
    assert passing.attrib["height"] == "20"
