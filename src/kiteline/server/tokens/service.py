"""API access tokens and agent registration tokens: issue, authenticate, revoke."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import execute_core, utcnow
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.scopes import SCOPES
from kiteline.server.kit.secrets import generate_token, hash_token
from kiteline.server.tokens.models import AgentToken, ApiToken
from kiteline.server.users.models import User


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once at creation: the plaintext is never stored."""

    token: str
    id: uuid.UUID
    scopes: list[str]


#: `last_used_at` is written at most this often per token: "last used" is for a person
#: deciding whether a token is still needed, not an audit log, and every API request reads it.
USE_RESOLUTION = timedelta(minutes=1)
DESCRIPTION_LIMIT = 200


async def create_api_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    scopes: list[str],
    description: str | None = None,
    organization_id: uuid.UUID | None = None,
) -> IssuedToken:
    """A new token of the user's (the plaintext is in the answer only). `organization_id`
    limits it to one of the user's organizations; None lets it reach all of them."""
    errors: list[dict[str, str]] = []
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes:
        errors.append({"field": "scopes", "code": "choose at least one scope"})
    elif unknown:
        errors.append({"field": "scopes", "code": f"unknown scope(s): {', '.join(unknown)}"})
    if description is not None and len(description) > DESCRIPTION_LIMIT:
        errors.append(
            {"field": "description", "code": f"is longer than {DESCRIPTION_LIMIT} characters"}
        )
    if errors:
        raise ValidationFailed(errors)
    token = generate_token("bkua_")
    row = ApiToken(
        user_id=user_id,
        token_hash=hash_token(token),
        scopes=[scope for scope in SCOPES if scope in scopes],
        description=description,
        organization_id=organization_id,
    )
    session.add(row)
    await session.flush()
    return IssuedToken(token=token, id=row.id, scopes=list(row.scopes))


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    """The user's API access tokens, newest first."""
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    )
    return list(rows)


async def get_for_user(
    session: AsyncSession, *, user_id: uuid.UUID, token_id: uuid.UUID | None
) -> ApiToken:
    token = await session.get(ApiToken, token_id) if token_id is not None else None
    if token is None or token.user_id != user_id:
        raise NotFound.of("API access token")
    return token


def is_use_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= USE_RESOLUTION


async def record_use(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> None:
    """Marks the token used now, unless another request marked it within USE_RESOLUTION."""
    await execute_core(
        session,
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - USE_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False),
        {},
    )


# Every REST request authenticates: the statement is built once (building a select, and
# SQLAlchemy's cache key for a new one, cost more than running it).
_API_TOKEN = (
    select(ApiToken, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


async def authenticate_api_token(session: AsyncSession, token: str) -> tuple[ApiToken, User] | None:
    row = await session.execute(_API_TOKEN, {"token_hash": hash_token(token)})
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
