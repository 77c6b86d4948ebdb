"""`/organizations/{org}/services` over HTTP: webhooks listed, created (validation errors
beside their fields), edited, their delivery history with each attempt's status and response
excerpt, "Redeliver" and "Ping" recorded by a real HTTP receiver, another organization's 404s,
and the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kiteline.server.webhooks.service import EVENTS
from tests.support.live_server import LiveServer
from tests.support.processes import wait_until
from tests.support.web import SignedIn, csrf_token, signed_in_site
from tests.support.webhook_receiver import Receiver, receiver

SERVICES = "/organizations/acme/services"
REST = "/v2/organizations/acme/services"


class Site(SignedIn):
    def post(self, form_page: str, action: str, data: dict[str, Any]) -> httpx.Response:
        page = self.client.get(form_page)
        assert page.status_code == 200, page.text
        return self.client.post(action, data={"csrf_token": csrf_token(page.text), **data})

    def create(self, url: str, **fields: Any) -> httpx.Response:
        data = {
            "description": "Deploys",
            "url": url,
            "events": list(EVENTS),
            "token_mode": "sha256",
            "tls_verify": "true",
            **fields,
        }
        return self.post(SERVICES + "/new", SERVICES, data)

    def created(self, url: str, **fields: Any) -> str:
        """The new webhook's page."""
        answer = self.create(url, **fields)
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]

    def rest(self, page: str) -> dict[str, Any]:
        webhook_id = page.rsplit("/", 1)[1]
        response = self.api.get(f"{REST}/{webhook_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def settled_page(self, page: str, count: int) -> str:
        """The webhook's page once `count` deliveries have an attempt each."""
        return wait_until(
            lambda: (
                html
                if (html := self.client.get(page).text).count('<div class="attempt">') >= count
                else None
            ),
            timeout=60,
            what=f"{count} attempted deliveries",
        )


@pytest.fixture
def site(server: LiveServer) -> Iterator[Site]:
    with signed_in_site(server, Site) as site:
        yield site


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def test_a_new_webhook_is_created_as_rest_creates_it_and_pinged(site: Site, hook: Receiver) -> None:
    page = site.created(
        hook.url,
        description="<b>Deploys</b>",
        events=["build.finished", "agent.connected"],
        token_mode="signature",
        token="s3cret",
        branch_configuration="main release/*",
    )

    assert re.fullmatch(rf"{SERVICES}/[0-9a-f-]{{36}}", page)
    rest = site.rest(page)
    assert rest["description"] == "<b>Deploys</b>"
    assert rest["settings"]["url"] == hook.url
    assert rest["settings"]["events"] == ["build.finished", "agent.connected"]
    assert (rest["settings"]["token_mode"], rest["settings"]["token"]) == ("signature", "s3cret")
    assert rest["branch_configuration"] == "main release/*"
    (ping,) = hook.wait_for_accepted(1)
    assert ping.event == "ping"
    assert ping.headers["x-buildkite-signature"].startswith("timestamp=")

    html = site.settled_page(page, 1)
    assert "<h1>&lt;b&gt;Deploys&lt;/b&gt;" in html
    assert f'<tr data-request-id="{ping.request_id}">' in html
    assert '<span class="status-code-ok">HTTP 200</span>' in html
    assert '<pre class="excerpt">{&#34;received&#34;: 0}</pre>' in html
    listed = site.client.get(SERVICES).text
    assert f'href="{page}">&lt;b&gt;Deploys&lt;/b&gt;</a>' in listed
    assert "2 of 13 events: build.finished, agent.connected" in listed


def test_every_event_ticked_is_every_event(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    assert site.rest(page)["settings"]["events"] == list(EVENTS)
    assert "Every event" in site.client.get(SERVICES).text


def test_an_invalid_webhook_is_refused_beside_its_fields_with_what_was_given(site: Site) -> None:
    refused = site.create("ftp://<example>", description="<i>x</i>", events=[], token_mode="md5")

    assert refused.status_code == 422
    html = refused.text
    assert "Webhook URL must be an http:// or https:// URL" in html
    assert "Events must name at least one event (leave it out for all)" in html
    assert "Signature mode must be one of sha256, signature, token" in html
    assert 'value="ftp://&lt;example&gt;"' in html
    assert 'value="&lt;i&gt;x&lt;/i&gt;"' in html
    assert site.api.get(REST).json()["items"] == []


def test_editing_changes_the_webhook_and_pings_it(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    hook.wait_for_accepted(1)

    saved = site.post(
        page,
        page,
        {
            "description": "Builds only",
            "url": hook.url,
            "events": ["build.running", "build.finished"],
            "token_mode": "token",
            "token": "plain-token",
            "branch_configuration": "",
        },
    )

    assert saved.status_code == 303
    assert saved.headers["location"] == page
    rest = site.rest(page)
    assert rest["description"] == "Builds only"
    assert rest["settings"]["events"] == ["build.running", "build.finished"]
    assert (rest["settings"]["token_mode"], rest["settings"]["token"]) == ("token", "plain-token")
    assert rest["settings"]["tls_verify"] is False  # unticked
    second = hook.wait_for_accepted(2)[1]
    assert (second.event, second.headers["x-buildkite-token"]) == ("ping", "plain-token")


def test_an_invalid_edit_changes_nothing(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    refused = site.post(
        page,
        page,
        {"url": "not a url", "events": ["build.finished"], "token_mode": "sha256", "token": ""},
    )
    assert refused.status_code == 422
    assert "Webhook URL must be an http:// or https:// URL" in refused.text
    assert "Token can&#39;t be blank" in refused.text
    assert site.rest(page)["settings"]["url"] == hook.url


def test_redeliver_sends_the_same_body_with_a_new_request_id(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    (first,) = hook.wait_for_accepted(1)
    html = site.settled_page(page, 1)

    again = site.client.post(
        f"{page}/deliveries/{first.request_id}/redeliver", data={"csrf_token": csrf_token(html)}
    )

    assert again.status_code == 303
    assert again.headers["location"] == f"{page}#deliveries"
    second = hook.wait_for_accepted(2)[1]
    assert second.body == first.body
    assert second.request_id != first.request_id
    html = site.settled_page(page, 2)
    assert f"Redelivery of {first.request_id}" in html
    deliveries = site.api.get(f"{REST}/{page.rsplit('/', 1)[1]}/deliveries").json()["items"]
    assert [(d["id"], d["redelivery_of"]) for d in deliveries] == [
        (second.request_id, first.request_id),
        (first.request_id, None),
    ]


def test_a_failed_attempt_shows_its_status_and_excerpt(site: Site) -> None:
    with receiver(lambda _index, _headers, _body: 500) as failing:
        page = site.created(failing.url)
        html = wait_until(
            lambda: text if "HTTP 500" in (text := site.client.get(page).text) else None,
            timeout=60,
            what="a failed attempt",
        )
    assert '<span class="status-code-bad">HTTP 500</span>' in html
    assert '<pre class="excerpt">{&#34;received&#34;: 0}</pre>' in html


def test_ping_queues_a_ping_delivery(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    hook.wait_for_accepted(1)

    pinged = site.post(page, f"{page}/ping", {})

    assert pinged.status_code == 303
    second = hook.wait_for_accepted(2)[1]
    assert second.event == "ping"
    assert f'<tr data-request-id="{second.request_id}">' in site.settled_page(page, 2)


def test_disable_and_enable_as_rest_does(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    assert site.post(page, f"{page}/disable", {}).status_code == 303
    rest = site.rest(page)
    assert rest["enabled"] is False
    assert rest["disabled_reason"] == "Disabled in the web UI by Test User"
    assert site.post(page, f"{page}/enable", {}).status_code == 303
    assert site.rest(page)["enabled"] is True


def test_another_organizations_webhooks_are_404(site: Site, hook: Receiver) -> None:
    other = site.server.identity("other")
    theirs = site.server.client(other.api_token).post(
        "/v2/organizations/other/services",
        json={"provider": "webhook", "settings": {"url": hook.url}},
    )
    assert theirs.status_code == 201
    their_id = theirs.json()["id"]
    form = site.client.get(SERVICES).text
    for path in (
        "/organizations/other/services",
        f"/organizations/other/services/{their_id}",
        f"{SERVICES}/{their_id}",
        f"{SERVICES}/not-a-uuid",
    ):
        assert site.client.get(path).status_code == 404, path
    token = {"csrf_token": csrf_token(site.client.get(SERVICES + "/new").text)}
    assert site.client.post(f"{SERVICES}/{their_id}/ping", data=token).status_code == 404
    assert site.client.post("/organizations/other/services", data=token).status_code == 404
    assert "other" not in form


def test_posts_without_the_csrf_token_are_refused(site: Site, hook: Receiver) -> None:
    page = site.created(hook.url)
    hook.wait_for_accepted(1)
    assert site.client.post(f"{page}/ping").status_code == 403
    assert site.client.post(SERVICES, data={"url": hook.url}).status_code == 403
    assert site.client.post(page, data={"url": "http://127.0.0.1:9/"}).status_code == 403
    assert len(site.api.get(REST).json()["items"]) == 1
    assert site.rest(page)["settings"]["url"] == hook.url
