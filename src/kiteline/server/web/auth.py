"""Who is looking at a web page: the session cookie, the signed-in viewer, CSRF tokens, and the
transactions every page and form action runs in.

Sessions are rows (sessions domain) named by a random cookie value; CSRF tokens are an HMAC of
that cookie value under the server's secret, so checking one needs no database and a token is
worthless with another session. Before sign-in, a short-lived random cookie plays the same
part for the sign-in form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import Forbidden, KitelineError, NotFound
from kiteline.server.kit.http import request_transaction
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.sessions import service as sessions
from kiteline.server.sessions.service import WebSession
from kiteline.server.users.service import User

SESSION_COOKIE = "kiteline_session"
SIGN_IN_COOKIE = "kiteline_sign_in"
SIGN_IN_COOKIE_SECONDS = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = (
    "This form has expired or did not come from this site (its security token is missing or "
    "wrong): reload the page and try again"
)


class SignInRequired(KitelineError):
    """A page that needs a signed-in viewer was asked for without one: the visitor is sent to
    /login and brought back afterwards."""

    status = 401

    def __init__(self) -> None:
        super().__init__("Sign in to see this page")


@dataclass(frozen=True)
class OrganizationLink:
    slug: str
    name: str


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request, with the organizations they may see. The layout reads
    only plain values (`name`, `email`, `links`), so that an error page can still show them
    after the request's transaction rolled back."""

    user: User
    web_session: WebSession
    csrf_token: str
    organizations: list[Organization]
    name: str
    email: str
    links: tuple[OrganizationLink, ...]

    def organization(self, slug: str) -> Organization:
        """One of the viewer's organizations; another's, or none, is a 404 (never a 403, so
        that a page does not tell whether an organization exists)."""
        for organization in self.organizations:
            if organization.slug == slug:
                return organization
        raise NotFound.of("organization")


def _secret(request: Request) -> bytes:
    secret: bytes = request.app.state.secret_key
    return secret


def csrf_token_for(request: Request, binding: str) -> str:
    digest = hmac.new(_secret(request), b"csrf\n" + binding.encode(), hashlib.sha256)
    return digest.hexdigest()


def _csrf_binding(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(SIGN_IN_COOKIE)


async def enforce_csrf(request: Request) -> None:
    """A dependency of the whole web router: every state-changing request carries the token of
    its session (form field `csrf_token`, or the X-CSRF-Token header htmx sends), or is
    refused with 403 before its endpoint runs."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    binding = _csrf_binding(request)
    if (
        not presented
        or binding is None
        or not hmac.compare_digest(presented, csrf_token_for(request, binding))
    ):
        raise Forbidden(CSRF_REFUSED)


def sign_in_binding(request: Request) -> tuple[str, bool]:
    """The random value the sign-in form's CSRF token is bound to, and whether it is new (then
    `set_cookie(…, SIGN_IN_COOKIE, …)` must send it with the form)."""
    binding = _csrf_binding(request)
    if binding is not None:
        return binding, False
    return secrets.token_urlsafe(24), True


def secure_cookies(request: Request) -> bool:
    public_url: str | None = request.app.state.settings.public_url
    scheme = urlsplit(public_url).scheme if public_url else request.url.scheme
    return scheme == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=secure_cookies(request)
    )


def session_lifetime(request: Request) -> timedelta:
    return timedelta(seconds=request.app.state.settings.session_lifetime_seconds)


async def find_viewer(session: AsyncSession, request: Request) -> Viewer | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    # The session, its user and the user's organizations: one query for every page.
    statement = organizations.with_memberships(sessions.find_statement(cookie), WebSession.user_id)
    rows = (await session.execute(statement)).all()
    if not rows or not sessions.is_live(rows[0][0]):
        return None
    web_session, user = rows[0][0], rows[0][1]
    memberships = [row[2] for row in rows if row[2] is not None]
    viewer = Viewer(
        user=user,
        web_session=web_session,
        csrf_token=csrf_token_for(request, cookie),
        organizations=memberships,
        name=user.name,
        email=user.email,
        links=tuple(OrganizationLink(o.slug, o.name) for o in memberships),
    )
    request.state.viewer = viewer  # for an error page of this request
    return viewer


@asynccontextmanager
async def page_transaction(
    request: Request, *, read_only: bool | None = None
) -> AsyncIterator[tuple[AsyncSession, Viewer]]:
    """The request's transaction and its signed-in viewer (else SignInRequired). GET pages
    read only; form actions (POST) write, through the same service functions as REST."""
    if read_only is None:
        read_only = request.method in SAFE_METHODS
    async with request_transaction(request, read_only=read_only) as session:
        viewer = await find_viewer(session, request)
        if viewer is None:
            raise SignInRequired
        yield session, viewer


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default`: `?next=` must not send a
    visitor to another host (`//evil.example`, `https://…`, `/\\evil.example`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(character) < 0x20 or character == "\\" for character in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_url(request: Request) -> str:
    """/login, with `next` bringing the visitor back to this page."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if here == "/" else f"/login?next={quote(here, safe='')}"
