"""Users: creation and lookup."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import execute_core
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.passwords import hash_password, password_problem, verify_password
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


class UserName(NamedTuple):
    """A user as a page names them (a user's name never changes)."""

    id: uuid.UUID
    name: str


_NAMES = select(User.id, User.name).where(User.id.in_(bindparam("ids", expanding=True)))


async def names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, UserName]:
    """The users' ids and names only: one light statement (`get_many` loads whole rows)."""
    if not ids:
        return {}
    rows = await execute_core(session, _NAMES, {"ids": list(ids)})
    return {row.id: UserName(row.id, row.name) for row in rows}


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    users = await session.scalars(select(User).where(User.id.in_(ids)))
    return {user.id: user for user in users}


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """Give the user a web UI password (callers revoke the user's sessions when it changes)."""
    problem = password_problem(password)
    if problem is not None:
        raise ValidationFailed.field("password", problem)
    user.password_hash = await hash_password(password)
    await session.flush()


async def authenticate_password(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None (one answer for both mistakes)."""
    user = await get_by_email(session, email)
    matched = await verify_password(user.password_hash if user else None, password)
    return user if matched else None
