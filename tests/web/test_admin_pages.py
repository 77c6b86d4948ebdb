"""The agents, API access tokens and webhooks pages in a real browser, against a live server:
a real `kiteline agent` shown connected and stopped with "Stop Agent", a token created in the
browser used with the REST API and revoked, and a webhook created, delivered to a real
receiver and redelivered."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.support.processes import wait_until
from tests.support.web import WebUi
from tests.support.webhook_receiver import receiver
from tests.web.test_build_page import AGENT_WORK_MS, Agent, start_agent

__all__ = ["start_agent"]  # the fixture, shared with the build page's tests


def test_a_connected_agent_is_listed_and_stop_agent_stops_it(
    web: WebUi, signed_in_page: Any, start_agent: Agent
) -> None:
    page = signed_in_page
    page.get_by_role("link", name="Agents").click()
    expect(page).to_have_url(re.compile(r"/organizations/acme/agents$"))
    expect(page.get_by_text("No agents are connected")).to_be_visible()
    expect(page.locator("body[data-live-connected]")).to_have_count(1)

    process = start_agent()

    row = page.locator(".agent", has_text="agent-0")
    expect(row).to_be_visible(timeout=AGENT_WORK_MS)  # live: no reload
    expect(row.locator(".connection-connected")).to_have_text("Connected")
    expect(row.locator(".tag")).to_have_text(["queue=default"])
    row.get_by_role("link", name="agent-0").click()
    expect(page.locator("h1")).to_contain_text("agent-0")
    page.get_by_role("button", name="Stop Agent").click()

    expect(page.locator("h1 .state")).to_have_text(
        re.compile("Stopping|Stopped"), timeout=AGENT_WORK_MS
    )
    wait_until(
        lambda: process.poll() is not None, timeout=AGENT_WORK_MS / 1000, what="the agent to exit"
    )
    expect(page.locator("h1 .state")).to_have_text("Stopped", timeout=AGENT_WORK_MS)
    agents = web.api().get("/v2/organizations/acme/agents").json()
    assert agents == []


def test_a_token_created_in_the_browser_works_with_rest_until_revoked(
    web: WebUi, signed_in_page: Any
) -> None:
    page = signed_in_page
    page.get_by_label("User menu").click()
    page.get_by_role("link", name="API Access Tokens").click()
    page.get_by_role("link", name="New API Access Token").click()
    page.get_by_label("Description").fill("From the browser")
    page.get_by_label("read_user", exact=True).check()
    page.get_by_label("read_builds", exact=True).check()
    page.get_by_label("Organization", exact=True).select_option(label="Acme")
    page.get_by_role("button", name="Create API Access Token").click()

    token = page.get_by_label("New API access token").inner_text()
    assert re.fullmatch(r"bkua_\S+", token)
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {token}"}) as api:
        user = api.get("/v2/user")
        assert user.status_code == 200
        assert user.json()["email"] == web.identity.email
        page.goto("/user/api-access-tokens")
        expect(page.get_by_text(token)).to_have_count(0)  # shown once
        row = page.locator("tr", has_text="From the browser")
        expect(row).to_contain_text("Acme")
        expect(row).to_contain_text("read_buildsread_user")
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator("tr", has_text="From the browser")).to_have_count(0)
        assert api.get("/v2/user").status_code == 401


def test_a_webhook_is_created_delivered_and_redelivered(web: WebUi, signed_in_page: Any) -> None:
    page = signed_in_page
    with receiver() as hook:
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("link", name="New Webhook").click()
        page.get_by_label("Description").fill("Receiver")
        page.get_by_label("Webhook URL").fill(hook.url)
        page.get_by_role("button", name="Add Webhook").click()
        expect(page.locator("h1")).to_contain_text("Receiver")
        (ping,) = hook.wait_for_accepted(1)

        delivery = page.locator(f'tr[data-request-id="{ping.request_id}"]')
        expect(delivery).to_contain_text("HTTP 200", timeout=AGENT_WORK_MS)  # refreshed
        delivery.get_by_role("button", name=re.compile("^Redeliver")).click()

        again = hook.wait_for_accepted(2)[1]
        assert (again.body, again.event) == (ping.body, "ping")
        assert again.request_id != ping.request_id
        redelivered = page.locator(f'tr[data-request-id="{again.request_id}"]')
        expect(redelivered).to_contain_text(f"Redelivery of {ping.request_id}")
        expect(redelivered).to_contain_text("HTTP 200", timeout=AGENT_WORK_MS)
