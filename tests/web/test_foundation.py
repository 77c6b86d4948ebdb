"""The web UI's foundation in a real browser: signing in and out, redirects, CSRF, another
organization's pages, escaping, the Content-Security-Policy, offline API docs, live updates."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support.web import WebUi

EVIL_NAME = '<script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">'


def test_sign_in_lands_on_the_organizations_pipelines(web: WebUi, page: Any) -> None:
    web.sign_in(page)
    expect(page.get_by_role("heading", name="Pipelines")).to_be_visible()
    expect(page.get_by_role("navigation", name="Organization")).to_contain_text("Agents")


def test_a_wrong_password_is_refused(web: WebUi, page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(web.identity.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The email or password you entered is incorrect."
    )
    assert page.url.endswith("/login")
    page.goto("/acme")
    assert "/login?next=%2Facme" in page.url


def test_a_signed_out_visitor_is_sent_to_login_and_back(web: WebUi, page: Any) -> None:
    page.goto("/acme?filter=hel")
    assert page.url == f"{web.url}/login?next=%2Facme%3Ffilter%3Dhel"
    page.get_by_label("Email").fill(web.identity.email)
    page.get_by_label("Password").fill(web.password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{web.url}/acme?filter=hel")
    expect(page.get_by_label("Filter pipelines")).to_have_value("hel")


def test_sign_out_ends_the_session(signed_in_page: Any) -> None:
    page = signed_in_page
    page.get_by_label("User menu").click()
    page.get_by_role("button", name="Sign Out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto("/acme")
    assert "/login?next=%2Facme" in page.url


def test_a_post_without_the_csrf_token_is_refused(signed_in_page: Any) -> None:
    page = signed_in_page
    status = page.evaluate(
        "fetch('/logout', {method: 'POST', headers: {'Content-Type': "
        "'application/x-www-form-urlencoded'}, body: ''}).then(r => r.status)"
    )
    assert status == 403
    page.reload()  # still signed in: the refused request changed nothing
    expect(page.get_by_role("heading", name="Pipelines")).to_be_visible()


def test_another_organizations_page_is_an_html_404(web: WebUi, signed_in_page: Any) -> None:
    web.server.identity("globex")  # exists, but the viewer is not a member
    response = signed_in_page.goto("/globex")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(signed_in_page.get_by_role("heading", name="Page Not Found")).to_be_visible()


def test_a_script_in_a_pipeline_name_is_shown_as_text(web: WebUi, signed_in_page: Any) -> None:
    created = web.api().post(
        "/v2/organizations/acme/pipelines",
        json={"name": EVIL_NAME, "slug": "evil", "configuration": "steps:\n  - command: echo hi\n"},
    )
    assert created.status_code == 201, created.text
    page = signed_in_page
    page.goto("/acme")
    expect(page.get_by_role("link", name=EVIL_NAME)).to_be_visible()
    assert page.evaluate("window.__injected") is None


def test_pages_carry_a_content_security_policy_without_inline_scripts(
    web: WebUi, page: Any
) -> None:
    response = page.goto("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.locator("script:not([src])").count() == 0


def test_api_docs_render_offline(web: WebUi, page: Any) -> None:
    elsewhere: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(web.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/v2/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Kiteline")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert elsewhere == []


def test_the_pipelines_list_follows_builds_live(web: WebUi, signed_in_page: Any) -> None:
    api = web.api()
    api.post(
        "/v2/organizations/acme/pipelines",
        json={"name": "Hello", "configuration": "steps:\n  - command: echo hi\n"},
    ).raise_for_status()
    page = signed_in_page
    page.goto("/acme")
    scheduled = page.locator(".pipeline", has_text="Hello").locator('[data-count="scheduled"]')
    expect(scheduled).to_have_text("0 scheduled")
    expect(page.locator("body[data-live-connected]")).to_have_count(1)
    api.post(
        "/v2/organizations/acme/pipelines/hello/builds",
        json={"commit": "HEAD", "branch": "main"},
    ).raise_for_status()
    expect(scheduled).to_have_text("1 scheduled")
    # The new build's bar appears too, linked to it and titled with its state and message.
    bar = page.get_by_role("list", name="Last builds of Hello").get_by_role("link")
    expect(bar).to_have_count(1)
    expect(bar).to_have_attribute("href", "/acme/hello/builds/1")
    expect(bar).to_have_attribute("title", "#1 scheduled")
    # New Pipeline: the button opens the form, "Create Pipeline" opens the new pipeline.
    page.get_by_role("link", name="New Pipeline").click()
    page.get_by_label("Name").fill("Second")
    page.get_by_role("button", name="Create Pipeline").click()
    expect(page).to_have_url(f"{web.url}/acme/second")
    expect(page.get_by_role("heading", name="Second")).to_be_visible()
