"""Organizations and memberships: creation, lookup, and who may see what."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kiteline.server.kit.db import get_or_not_found
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.urls import RESERVED_SLUGS
from kiteline.server.organizations.models import Membership, Organization
from kiteline.server.users.models import User

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


async def create(session: AsyncSession, *, slug: str, name: str | None = None) -> Organization:
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed.field(
            "slug", "must be lowercase letters, digits and dashes, starting with a letter or digit"
        )
    if slug in RESERVED_SLUGS:
        raise ValidationFailed.field("slug", f"is reserved: /{slug} is a path of Kiteline's own")
    if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise ValidationFailed.field("slug", "has already been taken")
    organization = Organization(slug=slug, name=name or slug)
    session.add(organization)
    await session.flush()
    return organization


async def add_member(
    session: AsyncSession, *, organization_id: uuid.UUID, user_id: uuid.UUID, role: str = "admin"
) -> None:
    existing = await session.get(Membership, (organization_id, user_id))
    if existing is None:
        session.add(Membership(organization_id=organization_id, user_id=user_id, role=role))
        await session.flush()


async def get_by_slug(session: AsyncSession, slug: str) -> Organization:
    organization = await session.scalar(select(Organization).where(Organization.slug == slug))
    if organization is None:
        raise NotFound.of("organization")
    return organization


# Built once: most REST requests find their organization with it.
_FOR_USER = (
    select(Organization)
    .join(Membership, Membership.organization_id == Organization.id)
    .where(Organization.slug == bindparam("slug"), Membership.user_id == bindparam("user_id"))
)


async def get_for_user(session: AsyncSession, *, slug: str, user_id: uuid.UUID) -> Organization:
    """The organization, or 404 when it is missing *or* the user is not a member."""
    organization = await session.scalar(_FOR_USER, {"slug": slug, "user_id": user_id})
    if organization is None:
        raise NotFound.of("organization")
    return organization


def with_memberships(
    statement: Select[*tuple[Any, ...]], user_id: InstrumentedAttribute[uuid.UUID]
) -> Select[*tuple[Any, ...]]:
    """`statement` with one more column, each organization the user `user_id` names is a member
    of (one row each, in `list_for_user`'s order; one row with None when there is none): a
    user and their organizations read in one query."""
    return (
        statement.add_columns(Organization)
        .outerjoin(Membership, Membership.user_id == user_id)
        .outerjoin(Organization, Organization.id == Membership.organization_id)
        .order_by(Organization.created_at, Organization.slug)
    )


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> list[Organization]:
    rows = await session.scalars(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.created_at, Organization.slug)
    )
    return list(rows)


async def get(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    return await get_or_not_found(session, Organization, organization_id, "organization")


async def member(session: AsyncSession, *, org: str, user_id: str) -> User | None:
    """The user with this id if they belong to the organization `org`."""
    try:
        parsed = uuid.UUID(user_id)
    except ValueError:
        return None
    return await session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Organization.slug == org, User.id == parsed)
    )


async def shares_organization(
    session: AsyncSession, user_id: uuid.UUID, organization_ids: Collection[uuid.UUID]
) -> bool:
    """Whether the user belongs to at least one of these organizations."""
    if not organization_ids:
        return False
    found = await session.scalar(
        select(Membership.user_id)
        .where(
            Membership.user_id == user_id,
            Membership.organization_id.in_(list(organization_ids)),
        )
        .limit(1)
    )
    return found is not None


async def all_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every organization's id (a handful): per-organization index lookups start from these."""
    return list(await session.scalars(select(Organization.id)))
