"""The web UI from a test's side: signing in over plain HTTP, and Debian's Chromium driven by
Playwright (its own browser download is not reachable here)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Any

import httpx

from kiteline.server import admin
from tests.support.live_server import Identity, LiveServer

PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF_FIELD.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def give_password(server: LiveServer, identity: Identity, password: str = PASSWORD) -> None:
    server.admin(lambda session: admin.set_password(session, identity.email, password))


def http_sign_in(
    client: httpx.Client, email: str, password: str, *, next_path: str = "/"
) -> httpx.Response:
    """What a browser does: fetch the form (and its cookie), post it back with the token."""
    form = client.get("/login", params={"next": next_path})
    assert form.status_code == 200, form.text
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": csrf_token(form.text),
        },
    )


@dataclass
class WebUi:
    """A live server with an organization `acme` whose member has a password, and the session's
    browser: `page()` opens a new signed-in browser context."""

    server: LiveServer
    identity: Identity
    browser: Any
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return self.server.url

    def api(self) -> httpx.Client:
        return self.server.client(self.identity.api_token)

    def new_context(self) -> Any:
        context = self.browser.new_context(base_url=self.server.url)
        context.set_default_timeout(20_000)
        return context

    def sign_in(self, page: Any, *, email: str | None = None) -> None:
        page.goto("/login")
        page.get_by_label("Email").fill(email or self.identity.email)
        page.get_by_label("Password").fill(self.password)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url(re.compile(r".*/acme$"))
