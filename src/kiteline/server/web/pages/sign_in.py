"""/login and /logout: email and password in, a session cookie out; sign-in attempts limited
per email and per client address."""

from __future__ import annotations

import logging

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from limits.errors import StorageError

from kiteline.server.kit.db import transaction
from kiteline.server.kit.http import request_transaction
from kiteline.server.kit.ratelimit import Budget, RateLimiter, Usage
from kiteline.server.sessions import service as sessions
from kiteline.server.users import service as users
from kiteline.server.web.auth import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_COOKIE_SECONDS,
    clear_cookie,
    csrf_token_for,
    find_viewer,
    page_transaction,
    safe_next,
    session_lifetime,
    set_cookie,
    sign_in_binding,
)
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()
log = logging.getLogger("kiteline.web")

LOGIN_SCOPE = "login"
WRONG_CREDENTIALS = "The email or password you entered is incorrect."


def _login_form(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    binding, new = sign_in_binding(request)
    response = render(
        request,
        "login.html",
        status=status,
        csrf_token=csrf_token_for(request, binding),
        next_path=next_path,
        email=email,
        error=error,
    )
    if new:
        set_cookie(request, response, SIGN_IN_COOKIE, binding, max_age=SIGN_IN_COOKIE_SECONDS)
    return response


@router.get("/login")
async def login_page(
    request: Request, next_target: str | None = Query(None, alias="next")
) -> Response:
    next_path = safe_next(next_target)
    async with request_transaction(request, read_only=True) as session:
        viewer = await find_viewer(session, request)
    if viewer is not None:
        return RedirectResponse(next_path, status_code=303)
    return _login_form(request, next_path=next_path)


async def _spend_attempt(request: Request, email: str) -> Usage | None:
    """Count one attempt against the email's and the client address's budgets (shared through
    Redis when configured); the usage that ran out, if one did."""
    per_minute: int = request.app.state.settings.login_attempts_per_minute
    if not per_minute:
        return None
    limiter: RateLimiter = request.app.state.rate_limiter
    budget = Budget(limiter.storage, LOGIN_SCOPE, per_minute)
    address = request.client.host if request.client else "unknown"
    try:
        for bucket in (f"email:{email.strip().lower()}", f"address:{address}"):
            usage = await budget.spend(bucket)
            if usage.exceeded:
                return usage
    except StorageError:
        log.warning("rate limit storage unavailable; sign-in attempt not counted", exc_info=True)
    return None


@router.post("/login")
async def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next_target: str = Form("/", alias="next"),
) -> Response:
    next_path = safe_next(next_target)
    exhausted = await _spend_attempt(request, email)
    if exhausted is not None:
        return _login_form(
            request,
            next_path=next_path,
            email=email,
            error=f"Too many sign-in attempts. Try again in {exhausted.reset} seconds.",
            status=429,
        )
    # The password check takes tens of milliseconds: done outside the write transaction, so
    # that on SQLite no writer waits for it.
    async with request_transaction(request, read_only=True) as session:
        user = await users.authenticate_password(session, email, password)
    if user is None:
        return _login_form(
            request, next_path=next_path, email=email, error=WRONG_CREDENTIALS, status=401
        )
    async with transaction(request.app.state.sessions) as session:
        started = await sessions.start(session, user_id=user.id, lifetime=session_lifetime(request))
    response = RedirectResponse(next_path, status_code=303)
    lifetime = int(session_lifetime(request).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, started.cookie_value, max_age=lifetime)
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    """Signing out changes state, so it is a POST; this page offers the button."""
    async with page_transaction(request) as (_session, viewer):
        return render(request, "logout.html", viewer=viewer)


@router.post("/logout")
async def logout(request: Request) -> Response:
    async with page_transaction(request) as (session, viewer):
        await sessions.end(session, viewer.web_session.id)
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
