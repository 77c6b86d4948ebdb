"""API access tokens and agent registration tokens: issue, authenticate, revoke."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import utcnow
from kiteline.server.kit.secrets import generate_token, hash_token
from kiteline.server.tokens.models import AgentToken, ApiToken
from kiteline.server.users.models import User


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once at creation: the plaintext is never stored."""

    token: str
    id: uuid.UUID
    scopes: list[str]


async def create_api_token(
    session: AsyncSession, *, user_id: uuid.UUID, scopes: list[str], description: str | None = None
) -> IssuedToken:
    token = generate_token("bkua_")
    row = ApiToken(
        user_id=user_id, token_hash=hash_token(token), scopes=scopes, description=description
    )
    session.add(row)
    await session.flush()
    return IssuedToken(token=token, id=row.id, scopes=list(scopes))


async def authenticate_api_token(session: AsyncSession, token: str) -> tuple[ApiToken, User] | None:
    row = await session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token))
    )
    found = row.first()
    if found is None:
        return None
    api_token, user = found
    if api_token.expires_at is not None and api_token.expires_at <= utcnow():
        return None
    return api_token, user


async def revoke_api_token(session: AsyncSession, token_id: uuid.UUID) -> None:
    await session.execute(delete(ApiToken).where(ApiToken.id == token_id))


async def create_agent_token(
    session: AsyncSession, *, organization_id: uuid.UUID, description: str | None = None
) -> IssuedToken:
    token = generate_token("bkct_")
    row = AgentToken(
        organization_id=organization_id, token_hash=hash_token(token), description=description
    )
    session.add(row)
    await session.flush()
    return IssuedToken(token=token, id=row.id, scopes=[])


async def authenticate_agent_token(session: AsyncSession, token: str) -> AgentToken | None:
    return await session.scalar(
        select(AgentToken).where(AgentToken.token_hash == hash_token(token))
    )
