"""The web UI from a test's side: signing in over plain HTTP, and Debian's Chromium driven by
Playwright (its own browser download is not reachable here)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from kiteline.server import admin
from tests.support.agent_protocol import ScriptedAgent
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


def signed_in(server: LiveServer, email: str) -> httpx.Client:
    """An HTTP client signed in to the web UI as `email` (whose password is PASSWORD)."""
    client = httpx.Client(base_url=server.url, headers={"Accept": "text/html"}, timeout=30)
    assert http_sign_in(client, email, PASSWORD).status_code == 303
    return client


class SignedIn:
    """A signed-in browser's HTTP client, and the API client of the same organization."""

    def __init__(self, server: LiveServer, identity: Identity, client: httpx.Client) -> None:
        self.server = server
        self.identity = identity
        self.client = client
        self.api = server.client(identity.api_token)


class Site(SignedIn):
    """`SignedIn` with the pipelines and builds of organization `acme` over REST, and forms
    posted as the browser posts them."""

    def pipeline(self, slug: str, steps: str, **fields: Any) -> None:
        response = self.api.post(
            "/v2/organizations/acme/pipelines",
            json={"name": slug.title(), "slug": slug, "configuration": steps, **fields},
        )
        assert response.status_code == 201, response.text

    def build(self, slug: str, **fields: Any) -> dict[str, Any]:
        response = self.api.post(
            f"/v2/organizations/acme/pipelines/{slug}/builds",
            json={"commit": "HEAD", "branch": "main", **fields},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def running_job(self, slug: str, steps: str) -> tuple[ScriptedAgent, dict[str, Any]]:
        """Pipeline `slug` of `steps` with build 1, and its first job taken and started by a
        new scripted agent: the agent and the job."""
        self.pipeline(slug, steps)
        self.build(slug)
        agent = ScriptedAgent.register(self.server.url, self.identity.agent_token)
        return agent, agent.take_job()

    def rest(self, slug: str, number: int) -> dict[str, Any]:
        response = self.api.get(
            f"/v2/organizations/acme/pipelines/{slug}/builds/{number}",
            params={"include_retried_jobs": "true"},
        )
        return response.json()  # type: ignore[no-any-return]

    def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        page = self.client.get(path.rsplit("/jobs/", 1)[0].rsplit("/cancel", 1)[0])
        return self.client.post(path, data={"csrf_token": csrf_token(page.text), **(data or {})})


S = TypeVar("S", bound=SignedIn)


@contextmanager
def signed_in_site(server: LiveServer, kind: type[S]) -> Iterator[S]:
    """A member of a new organization `acme`, given a password and signed in, as `kind`."""
    identity = server.identity("acme")
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as client:
        yield kind(server, identity, client)


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
