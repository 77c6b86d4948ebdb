"""The web UI's first pages over HTTP: where `/` leads, the pipelines list, live fragments."""

from __future__ import annotations

from contextlib import closing

import httpx

from kiteline.server import admin
from tests.support.live_server import LiveServer
from tests.support.web import PASSWORD, give_password, signed_in

STEPS = "steps:\n  - command: echo hi\n"


def test_home_leads_to_the_users_organization(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as client:
        response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/acme"


def test_a_user_without_an_organization_is_told_so(server: LiveServer) -> None:
    server.admin(lambda s: admin.create_user(s, "loner@example.com", None, None, PASSWORD))
    with closing(signed_in(server, "loner@example.com")) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert "You don't belong to an organization yet" in response.text


def test_the_pipelines_list_shows_counts_and_filters_by_name(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    api = server.client(identity.api_token)
    for name in ("Backend", "Frontend"):
        api.post(
            "/v2/organizations/acme/pipelines", json={"name": name, "configuration": STEPS}
        ).raise_for_status()
    api.post(
        "/v2/organizations/acme/pipelines/backend/builds",
        json={"commit": "HEAD", "branch": "main"},
    ).raise_for_status()
    with closing(signed_in(server, identity.email)) as client:
        everything = client.get("/acme").text
        filtered = client.get("/acme", params={"filter": "front"}).text
        nothing = client.get("/acme", params={"filter": "<b>none</b>"}).text
    assert '<a class="row-title" href="/acme/backend">Backend</a>' in everything
    assert '<a class="row-title" href="/acme/frontend">Frontend</a>' in everything
    assert '<span class="count" data-count="scheduled">1 scheduled</span>' in everything
    assert "/acme/backend" not in filtered
    assert "/acme/frontend" in filtered
    assert "No pipelines match “&lt;b&gt;none&lt;/b&gt;”." in nothing


def test_a_live_region_is_rendered_alone_for_htmx(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as client:
        fragment = client.get("/acme", headers={"HX-Request": "true", "HX-Target": "pipelines"})
    assert fragment.status_code == 200
    assert fragment.text.startswith('<section id="pipelines"')
    assert "<html" not in fragment.text


def test_an_htmx_request_of_a_signed_out_visitor_redirects_the_page(server: LiveServer) -> None:
    server.identity("acme")
    response = httpx.get(f"{server.url}/acme", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=%2Facme"


def test_the_favicon_is_the_packages(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/favicon.ico")
    assert response.status_code == 301
    icon = httpx.get(f"{server.url}{response.headers['location']}")
    assert icon.headers["content-type"] == "image/svg+xml"
