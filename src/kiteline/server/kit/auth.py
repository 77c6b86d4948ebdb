"""REST authentication: `Authorization: Bearer <token>` → the user, their token and its scopes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import Forbidden, Unauthorized
from kiteline.server.kit.http import request_transaction
from kiteline.server.kit.ratelimit import enforce_rate_limits
from kiteline.server.tokens import service as tokens
from kiteline.server.tokens.models import ApiToken
from kiteline.server.users.models import User

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
    async with request_transaction(request, read_only=read_only) as session:
        principal = await authenticate(session, request)
        await enforce_rate_limits(request, principal.user_id)
        if scope is not None:
            principal.require(scope)
        yield session, principal
