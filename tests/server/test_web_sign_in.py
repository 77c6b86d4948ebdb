"""Web sign-in over plain HTTP: cookies, CSRF, rate limits, expiry, revocation, redirects."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server import admin
from kiteline.server.kit.db import utcnow
from kiteline.server.sessions.models import WebSession
from kiteline.server.web.auth import safe_next
from tests.support.live_server import LiveServer
from tests.support.web import PASSWORD, csrf_token, give_password, http_sign_in

HTML = {"Accept": "text/html"}


async def expire_every_session(session: AsyncSession) -> None:
    """What time does to sessions, without waiting for it."""
    await session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))


def browser_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=HTML, timeout=30)


def test_signing_in_sets_an_http_only_same_site_session_cookie(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        response = http_sign_in(client, identity.email, PASSWORD, next_path="/acme")
        assert response.status_code == 303
        assert response.headers["location"] == "/acme"
        cookie = next(
            value
            for name, value in response.headers.multi_items()
            if name == "set-cookie" and value.startswith("kiteline_session=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie  # served over http
        assert client.get("/acme").status_code == 200


def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(public_url="https://ci.example.com")
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        form = client.get("/login")
        assert "Secure" in form.headers["set-cookie"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        wrong = http_sign_in(client, identity.email, "wrong password")
        unknown = http_sign_in(client, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or password you entered is incorrect." in wrong.text
    assert "The email or password you entered is incorrect." in unknown.text


def test_a_user_without_a_password_cannot_sign_in(server: LiveServer) -> None:
    identity = server.identity("acme")
    with browser_client(server) as client:
        assert http_sign_in(client, identity.email, "").status_code == 401


def test_sign_in_without_the_forms_token_is_refused(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        client.get("/login")
        response = client.post("/login", data={"email": identity.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in response.text


def test_a_token_from_another_session_is_refused(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as first, browser_client(server) as second:
        http_sign_in(first, identity.email, PASSWORD)
        http_sign_in(second, identity.email, PASSWORD)
        token_of_first = csrf_token(first.get("/acme").text)
        refused = second.post("/logout", data={"csrf_token": token_of_first})
        assert refused.status_code == 403
        assert second.get("/acme").status_code == 200
        # The header htmx sends works as the form field does.
        signed_out = first.post("/logout", headers={"X-CSRF-Token": token_of_first})
        assert signed_out.status_code == 303
        assert first.get("/acme").status_code == 303


def test_sign_in_attempts_are_limited_per_email(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(login_attempts_per_minute=3)
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        statuses = [http_sign_in(client, identity.email, "wrong").status_code for _ in range(3)]
        limited = http_sign_in(client, identity.email, PASSWORD)
    assert statuses == [401, 401, 401]
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in limited.text


def test_sign_in_limits_are_shared_through_redis(make_server: Callable[..., LiveServer]) -> None:
    redis_url = os.environ.get("KITELINE_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("KITELINE_TEST_REDIS_URL is not set")
    import redis

    shared = redis.Redis.from_url(redis_url)
    stale = list(shared.scan_iter("*login*"))  # this minute's buckets of an earlier run
    if stale:
        shared.delete(*stale)
    shared.close()
    first = make_server(login_attempts_per_minute=2, redis_url=redis_url)
    second = make_server(login_attempts_per_minute=2, redis_url=redis_url)
    email = f"shared-{os.urandom(4).hex()}@example.com"  # a fresh bucket in a shared Redis
    with browser_client(first) as one, browser_client(second) as two:
        assert http_sign_in(one, email, "wrong").status_code == 401
        assert http_sign_in(two, email, "wrong").status_code == 401
        assert http_sign_in(one, email, "wrong").status_code == 429


def test_an_expired_session_is_sent_to_sign_in_again(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        http_sign_in(client, identity.email, PASSWORD)
        assert client.get("/acme").status_code == 200
        server.admin(expire_every_session)
        response = client.get("/acme")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Facme"


def test_a_new_password_signs_the_user_out_everywhere(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as client:
        http_sign_in(client, identity.email, PASSWORD)
        ended = server.admin(lambda s: admin.set_password(s, identity.email, "a new password"))
        assert ended["sessions_ended"] == 1
        assert client.get("/acme").status_code == 303


def test_a_short_password_is_refused(server: LiveServer) -> None:
    identity = server.identity("acme")
    with pytest.raises(Exception, match="Validation Failed"):
        give_password(server, identity, "short")


def test_api_errors_stay_json_and_web_errors_are_pages(server: LiveServer) -> None:
    with browser_client(server) as client:
        api = client.get("/v2/organizations/nope/pipelines")
        page = client.get("/login/nothing/here")
    assert api.headers["content-type"] == "application/json"
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/acme/hello?branch=main", "/acme/hello?branch=main"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/acme\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_is_only_ever_a_local_path(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_an_organization_cannot_take_a_path_of_the_server(server: LiveServer) -> None:
    with pytest.raises(Exception, match="Validation Failed"):
        server.admin(lambda s: admin.create_org(s, "login", None))


def test_expired_sessions_are_cleared_at_the_next_sign_in(server: LiveServer) -> None:
    identity = server.identity("acme")
    give_password(server, identity)
    with browser_client(server) as old, browser_client(server) as new:
        http_sign_in(old, identity.email, PASSWORD)
        server.admin(expire_every_session)
        http_sign_in(new, identity.email, PASSWORD)

        async def count(session: AsyncSession) -> int:
            return len((await session.execute(select(WebSession.id))).all())

        assert server.admin(count) == 1
