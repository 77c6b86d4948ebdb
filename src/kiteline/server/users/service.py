"""Users: creation and lookup."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from kiteline.server.kit.db import NamesById, get_or_not_found
from kiteline.server.kit.errors import ValidationFailed
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
    return await get_or_not_found(session, User, user_id, "user")


# Built once: every list of builds reads its creators with it.
_BY_IDS = select(User).where(User.id.in_(bindparam("ids", expanding=True)))


# The users' ids and names only (`get_many` loads whole rows).
names = NamesById(User.id, User.name)


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
    """The users with these ids. Those this transaction has loaded already (the caller, who
    authenticated in it, is often the creator of what is shown) are taken as loaded: a
    statement would give the same objects, their attributes as loaded (the ORM does not
    overwrite them), so it is saved."""
    found: dict[uuid.UUID, User] = {}
    identities = session.sync_session.identity_map
    for user_id in ids:
        user = identities.get(identity_key(User, user_id))
        if isinstance(user, User) and not inspect(user).expired_attributes:
            found[user_id] = user
    missing = [user_id for user_id in ids if user_id not in found]
    if missing:
        found.update((user.id, user) for user in await session.scalars(_BY_IDS, {"ids": missing}))
    return found


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
