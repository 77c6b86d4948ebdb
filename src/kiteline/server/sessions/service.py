"""Web UI sessions: start one at sign-in, find it from its cookie (`find_statement`), end it
(or all of a user's)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import utcnow
from kiteline.server.kit.secrets import hash_token
from kiteline.server.sessions.models import WebSession
from kiteline.server.users.models import User

COOKIE_VALUE_BYTES = 32


@dataclass(frozen=True)
class StartedSession:
    """A new session and the cookie value that names it (only its hash is stored)."""

    cookie_value: str
    session: WebSession


async def start(
    session: AsyncSession, *, user_id: uuid.UUID, lifetime: timedelta
) -> StartedSession:
    now = utcnow()
    # Expired rows are cleared here rather than by a sweep: sign-ins are rare next to the
    # sweeps' once a second, and every expired row is gone by the next one.
    await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    cookie_value = secrets.token_urlsafe(COOKIE_VALUE_BYTES)
    row = WebSession(
        user_id=user_id,
        token_hash=hash_token(cookie_value),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    await session.flush()
    return StartedSession(cookie_value=cookie_value, session=row)


def find_statement(cookie_value: str) -> Select[WebSession, User]:
    """The session this cookie names and its user (`WebSession`, `User`), whether live or not
    (`is_live` tells): a statement that others may join more to (the user's memberships), so
    that a page reads its viewer in one query."""
    return (
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == hash_token(cookie_value))
    )


def is_live(web_session: WebSession) -> bool:
    return web_session.expires_at > utcnow()


async def end(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == session_id))


async def end_all_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Sign the user out everywhere (a changed password); how many sessions ended."""
    result = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
