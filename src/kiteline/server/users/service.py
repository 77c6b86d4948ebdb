"""Users: creation and lookup."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.users.models import User


async def create(session: AsyncSession, *, email: str, name: str | None = None) -> User:
    email = email.strip()
    if "@" not in email:
        raise ValidationFailed.field("email", "must be an email address")
    if await get_by_email(session, email) is not None:
        raise ValidationFailed.field("email", "has already been taken")
    user = User(email=email, name=name or email.split("@", 1)[0])
    session.add(user)
    await session.flush()
    return user


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip()))


async def get(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound.of("user")
    return user


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    users = await session.scalars(select(User).where(User.id.in_(ids)))
    return {user.id: user for user in users}
