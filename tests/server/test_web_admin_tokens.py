"""`/user/api-access-tokens` over HTTP: the user's tokens, "New API Access Token" (every scope
the API knows, the value shown once, usable with REST, limited to an organization), "Revoke"
(then 401), validation, another user's token, and the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.scopes import SCOPES
from kiteline.server.organizations import service as organizations
from kiteline.server.users import service as users
from tests.support.live_server import LiveServer
from tests.support.web import SignedIn, csrf_token, give_password, signed_in, signed_in_site

TOKENS = "/user/api-access-tokens"
TOKEN_VALUE = re.compile(r"bkua_[A-Za-z0-9_\-]+")


class Site(SignedIn):
    def create(self, **fields: str | list[str]) -> httpx.Response:
        form = self.client.get(TOKENS + "/new")
        assert form.status_code == 200, form.text
        return self.client.post(TOKENS, data={"csrf_token": csrf_token(form.text), **fields})

    def created_token(self, **fields: str | list[str]) -> str:
        answer = self.create(**fields)
        assert answer.status_code == 200, answer.text
        (value,) = TOKEN_VALUE.findall(answer.text)
        return value

    def row(self, description: str) -> str:
        page = self.client.get(TOKENS).text
        for row in re.findall(r"<tr data-token-id=.*?</tr>", page, re.S):
            if f'<td data-label="Description">{description}</td>' in row:
                return str(row)
        raise AssertionError(f"no row for {description}")


@pytest.fixture
def site(server: LiveServer) -> Iterator[Site]:
    with signed_in_site(server, Site) as site:
        yield site


def test_the_form_offers_every_scope_the_api_knows_and_the_users_organizations(
    site: Site,
) -> None:
    form = site.client.get(TOKENS + "/new").text
    offered = re.findall(r'<input type="checkbox" name="scopes" value="([a-z_]+)"', form)
    assert offered == list(SCOPES)
    assert '<option value="" selected>All your organizations</option>' in form
    assert '<option value="acme">Acme</option>' in form


def test_a_new_token_is_shown_once_and_works_with_the_rest_api(site: Site) -> None:
    token = site.created_token(
        description="<i>deploys</i>", scopes=["read_user", "read_builds"], organization=""
    )

    api = site.server.client(token)
    user = api.get("/v2/user")
    assert user.status_code == 200
    assert user.json()["email"] == site.identity.email
    assert api.get("/v2/access-token").json()["scopes"] == ["read_builds", "read_user"]
    refused = api.get("/v2/organizations/acme/pipelines")
    assert refused.status_code == 403
    assert refused.json() == {"message": "Your access token doesn't have the read_pipelines scope"}

    listed = site.client.get(TOKENS).text
    assert token not in listed
    row = site.row("&lt;i&gt;deploys&lt;/i&gt;")
    assert '<li class="tag">read_builds</li><li class="tag">read_user</li>' in row
    assert '<td data-label="Organization">All your organizations</td>' in row
    assert '<td data-label="Last used">Never</td>' not in row
    assert '<td data-label="Last used"><time datetime=' in row


def test_a_token_limited_to_an_organization_finds_no_other(site: Site) -> None:
    site.server.identity("other")  # an organization the user is not a member of yet
    site.server.admin(lambda s: _join(s, site.identity.email, "other"))
    token = site.created_token(
        description="acme only",
        scopes=["read_organizations", "read_pipelines", "read_builds"],
        organization="acme",
    )
    api = site.server.client(token)

    assert [o["slug"] for o in api.get("/v2/organizations").json()] == ["acme"]
    assert api.get("/v2/organizations/acme/pipelines").status_code == 200
    other = api.get("/v2/organizations/other/pipelines")
    assert other.status_code == 404
    assert other.json() == {"message": "No organization found"}
    unlimited = site.server.client(site.identity.api_token)
    assert unlimited.get("/v2/organizations/other/pipelines").status_code == 200
    assert '<td data-label="Organization">Acme</td>' in site.row("acme only")


def test_a_token_limited_to_an_organization_sees_no_other_in_graphql(site: Site) -> None:
    site.server.identity("other")
    site.server.admin(lambda s: _join(s, site.identity.email, "other"))
    token = site.created_token(description="graphql", scopes=["graphql"], organization="acme")
    query = '{ a: organization(slug: "acme") { slug } b: organization(slug: "other") { slug } }'

    answer = site.server.client(token).post("/graphql", json={"query": query})

    assert answer.status_code == 200
    assert answer.json()["data"] == {"a": {"slug": "acme"}, "b": None}


async def _join(session: AsyncSession, email: str, org: str) -> None:
    user = await users.get_by_email(session, email)
    assert user is not None
    organization = await organizations.get_by_slug(session, org)
    await organizations.add_member(session, organization_id=organization.id, user_id=user.id)


def test_a_revoked_token_is_refused_with_401(site: Site) -> None:
    token = site.created_token(description="short-lived", scopes=["read_user"])
    api = site.server.client(token)
    assert api.get("/v2/user").status_code == 200
    token_id = re.search(r'<tr data-token-id="([^"]+)"', site.row("short-lived"))
    assert token_id is not None
    page = site.client.get(TOKENS).text

    revoked = site.client.post(
        f"{TOKENS}/{token_id.group(1)}/revoke", data={"csrf_token": csrf_token(page)}
    )

    assert revoked.status_code == 303
    assert revoked.headers["location"] == TOKENS
    refused = api.get("/v2/user")
    assert refused.status_code == 401
    assert refused.json()["message"].startswith("Authentication required.")
    assert "short-lived" not in site.client.get(TOKENS).text


def test_a_token_needs_a_scope_and_one_of_the_users_organizations(site: Site) -> None:
    none = site.create(description="nothing", scopes=[])
    assert none.status_code == 422
    assert "Scopes choose at least one scope" in none.text
    assert 'value="nothing"' in none.text

    foreign = site.create(description="x", scopes=["read_user"], organization="elsewhere")
    assert foreign.status_code == 422
    assert "Organization must be one of your organizations" in foreign.text

    unknown = site.create(description="y", scopes=["read_user", "root"])
    assert unknown.status_code == 422
    assert "Scopes unknown scope(s): root" in unknown.text
    assert "You have no API access tokens" not in site.client.get(TOKENS).text  # the fixture's
    assert "nothing" not in site.client.get(TOKENS).text


def test_another_users_token_cannot_be_revoked(site: Site) -> None:
    other = site.server.identity("acme")  # a second member with a token of their own
    give_password(site.server, other)
    with closing(signed_in(site.server, other.email)) as theirs:
        page = theirs.get(TOKENS).text
        (their_id,) = re.findall(r'<tr data-token-id="([^"]+)"', page)
    mine = site.client.get(TOKENS).text

    refused = site.client.post(f"{TOKENS}/{their_id}/revoke", data={"csrf_token": csrf_token(mine)})

    assert refused.status_code == 404
    assert site.server.client(other.api_token).get("/v2/user").status_code == 200
    assert their_id not in mine


def test_creating_or_revoking_without_the_csrf_token_is_refused(site: Site) -> None:
    created = site.client.post(TOKENS, data={"description": "csrf", "scopes": "read_user"})
    assert created.status_code == 403
    (token_id,) = re.findall(r'<tr data-token-id="([^"]+)"', site.client.get(TOKENS).text)
    revoked = site.client.post(f"{TOKENS}/{token_id}/revoke")
    assert revoked.status_code == 403
    assert site.server.client(site.identity.api_token).get("/v2/user").status_code == 200
