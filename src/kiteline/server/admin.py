"""Operator actions behind `kiteline admin …` and `kiteline up`, run in one transaction each."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.migrate import upgrade
from kiteline.server.kit.passwords import generate_password
from kiteline.server.kit.scopes import SCOPES
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.sessions import service as sessions
from kiteline.server.tokens import service as tokens
from kiteline.server.users import service as users
from kiteline.settings import Settings

T = TypeVar("T")

HELLO_PIPELINE = """\
steps:
  - label: ":wave: Hello"
    command: echo "Hello from Kiteline, build $$BUILDKITE_BUILD_NUMBER on $$BUILDKITE_AGENT_NAME"
  - wait
  - label: ":mag: Where am I"
    command: pwd && uname -a
"""


async def run_in_transaction(
    settings: Settings, action: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """Open the database (migrating it first), run `action`, commit, close."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        async with transaction(create_sessionmaker(engine)) as session:
            return await action(session)
    finally:
        await engine.dispose()


async def create_org(session: AsyncSession, slug: str, name: str | None) -> dict[str, Any]:
    organization = await organizations.create(session, slug=slug, name=name)
    return {"id": str(organization.id), "slug": organization.slug, "name": organization.name}


async def create_user(
    session: AsyncSession,
    email: str,
    name: str | None,
    org: str | None,
    password: str | None = None,
) -> dict[str, Any]:
    user = await users.create(session, email=email, name=name)
    if password is not None:
        await users.set_password(session, user, password)
    if org is not None:
        organization = await organizations.get_by_slug(session, org)
        await organizations.add_member(session, organization_id=organization.id, user_id=user.id)
    return {"id": str(user.id), "email": user.email, "name": user.name}


async def set_password(session: AsyncSession, email: str, password: str) -> dict[str, Any]:
    """A new web UI password; the user's open sessions end (signed out everywhere)."""
    user = await users.get_by_email(session, email)
    if user is None:
        raise NotFound.of("user")
    await users.set_password(session, user, password)
    ended = await sessions.end_all_for_user(session, user.id)
    return {"id": str(user.id), "email": user.email, "sessions_ended": ended}


async def create_token(
    session: AsyncSession, email: str, scopes: list[str], description: str | None
) -> dict[str, Any]:
    user = await users.get_by_email(session, email)
    if user is None:
        raise NotFound.of("user")
    issued = await tokens.create_api_token(
        session, user_id=user.id, scopes=scopes, description=description
    )
    return {"token": issued.token, "uuid": str(issued.id), "scopes": issued.scopes}


async def create_agent_token(
    session: AsyncSession, org: str, description: str | None
) -> dict[str, Any]:
    organization = await organizations.get_by_slug(session, org)
    issued = await tokens.create_agent_token(
        session, organization_id=organization.id, description=description
    )
    return {"token": issued.token, "uuid": str(issued.id), "organization": organization.slug}


async def first_start(session: AsyncSession) -> dict[str, Any]:
    """What `kiteline up` creates the first time: org `default`, a user with a web UI
    password, both tokens and a `hello` pipeline to trigger."""
    org = await create_org(session, "default", "Default")
    password = generate_password()
    user = await create_user(
        session, "admin@kiteline.local", "Kiteline Admin", "default", password=password
    )
    api = await create_token(session, user["email"], list(SCOPES), "kiteline up")
    agent = await create_agent_token(session, "default", "kiteline up")
    organization = await organizations.get_by_slug(session, "default")
    await pipelines.create(
        session,
        organization_id=organization.id,
        name="Hello",
        configuration=HELLO_PIPELINE,
        created_by_id=uuid.UUID(user["id"]),
        description="A first pipeline to try Kiteline with",
    )
    return {
        "organization": org["slug"],
        "user": user["email"],
        "password": password,
        "api_token": api["token"],
        "agent_token": agent["token"],
    }
