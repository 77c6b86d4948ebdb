"""REST authentication: `Authorization: Bearer <token>` → the user, their token and its scopes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import transaction, utcnow
from kiteline.server.kit.errors import Forbidden, NotFound, Unauthorized
from kiteline.server.kit.http import request_transaction
from kiteline.server.kit.ratelimit import enforce_rate_limits
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.tokens import service as tokens
from kiteline.server.tokens.models import ApiToken
from kiteline.server.users.service import User

UNAUTHORIZED_MESSAGE = (
    "Authentication required. Please supply a valid API Access Token: "
    "https://buildkite.com/docs/apis/rest-api#authentication"
)


@dataclass(frozen=True)
class Principal:
    user: User
    token: ApiToken

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    def require(self, scope: str) -> None:
        if scope not in self.token.scopes:
            raise Forbidden(f"Your access token doesn't have the {scope} scope")

    def visible(self, organizations: list[Organization]) -> list[Organization]:
        """Those of the user's organizations this token reaches: all of them, or the one it
        is limited to (`/user/api-access-tokens`)."""
        limit = self.token.organization_id
        return [o for o in organizations if limit is None or o.id == limit]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def authenticate(session: AsyncSession, request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(UNAUTHORIZED_MESSAGE)
    found = await tokens.authenticate_api_token(session, token)
    if found is None:
        raise Unauthorized(UNAUTHORIZED_MESSAGE)
    return Principal(user=found[1], token=found[0])


@asynccontextmanager
async def api_transaction(
    request: Request, scope: str | None
) -> AsyncIterator[tuple[AsyncSession, Principal]]:
    """The request's transaction with its caller authenticated and `scope` checked.

    GET requests needing a `read_*` scope run read-only (they never write)."""
    read_only = request.method in ("GET", "HEAD") and (scope or "").startswith("read_")
    used: tuple[uuid.UUID, datetime | None] | None = None
    try:
        async with request_transaction(request, read_only=read_only) as session:
            principal = await authenticate(session, request)
            used = principal.token.id, principal.token.last_used_at
            await enforce_rate_limits(request, principal.user_id)
            if scope is not None:
                principal.require(scope)
            await enforce_organization_limit(session, request, principal)
            yield session, principal
    finally:
        if used is not None:
            await record_use(request, *used)


async def enforce_organization_limit(
    session: AsyncSession, request: Request, principal: Principal
) -> None:
    """A token limited to one organization finds no other (`/organizations/{org}/…` paths are
    404, as for an organization the user is not a member of)."""
    limit = principal.token.organization_id
    org = request.path_params.get("org")
    if limit is None or org is None:
        return
    if (await organizations.get(session, limit)).slug != org:  # NotFound when it is gone
        raise NotFound.of("organization")


async def record_use(request: Request, token_id: uuid.UUID, last_used_at: datetime | None) -> None:
    """`last_used_at`, in a transaction of its own after the request's (which may be
    read-only), at most once per `tokens.USE_RESOLUTION` per token. Takes plain values: the
    request's transaction is over, and its objects with it."""
    now = utcnow()
    if not tokens.is_use_stale(last_used_at, now):
        return
    async with transaction(request.app.state.sessions) as session:
        await tokens.record_use(session, token_id, now)
