"""Webhooks: their configuration and its rules — which events, pipelines and branches each one
takes, how it signs, whether it is enabled. Their deliveries are `queue`'s."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import branch_matches
from kiteline.server.events.names import EventName
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.pipelines import service as pipelines
from kiteline.server.webhooks.models import Webhook
from kiteline.server.webhooks.signing import TokenMode

#: Every event a webhook can subscribe to (`ping` is always sent).
EVENTS: tuple[str, ...] = tuple(name.value for name in EventName)
BUILD_STATE_KEYS = (
    "build_passed",
    "build_fixed",
    "build_failed",
    "build_blocked",
    "build_canceled",
    "build_failing",
    "job_activated",
)
#: Buildkite names the timestamped mode `signature`; `timestamp` is accepted for it too.
TOKEN_MODE_ALIASES = {"timestamp": TokenMode.SIGNATURE}
SCOPES = ("all", "some_projects")
PROVIDER = "webhook"


async def create(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    created_by_id: uuid.UUID | None,
    fields: dict[str, Any],
) -> Webhook:
    """`fields` as REST takes them, `settings` flattened: provider, url, token, token_mode,
    events, tls_verify, description, scope, scope_uuids, branch_configuration, build_states."""
    if "url" not in fields:
        raise ValidationFailed.field("settings.url", "can't be blank")
    webhook = Webhook(
        organization_id=organization_id,
        created_by_id=created_by_id,
        description="",
        token=secrets.token_urlsafe(24),
        token_mode=TokenMode.SHA256,
        events=None,
        scope="all",
        pipeline_ids=[],
        branch_configuration="",
        build_states=dict.fromkeys(BUILD_STATE_KEYS, False),
        tls_verify=True,
        enabled=True,
        consecutive_failures=0,
    )
    await _apply(session, webhook, fields)
    session.add(webhook)
    await session.flush()
    return webhook


async def update(session: AsyncSession, webhook: Webhook, fields: dict[str, Any]) -> None:
    """Change only the given fields (Buildkite's PATCH)."""
    await _apply(session, webhook, fields)
    webhook.updated_at = utcnow()


async def _apply(session: AsyncSession, webhook: Webhook, fields: dict[str, Any]) -> None:
    errors: list[dict[str, str]] = []

    def refuse(field: str, code: str) -> None:
        errors.append({"field": field, "code": code})

    for name, value in fields.items():
        if name == "provider":
            if value != PROVIDER:
                refuse("provider", f"Kiteline only supports the `{PROVIDER}` provider")
        elif name == "url":
            if not _web_url(value):
                refuse("settings.url", "must be an http:// or https:// URL")
            else:
                webhook.url = value
        elif name == "token":
            if not isinstance(value, str) or not value.strip():
                refuse("settings.token", "can't be blank")
            else:
                webhook.token = value
        elif name == "token_mode":
            mode = TOKEN_MODE_ALIASES.get(value) or _token_mode(value)
            if mode is None:
                choices = ", ".join(m.value for m in TokenMode)
                refuse("settings.token_mode", f"must be one of {choices}")
            else:
                webhook.token_mode = mode
        elif name == "events":
            unknown = [event for event in value or [] if event not in EVENTS]
            if value == []:
                refuse("settings.events", "must name at least one event (leave it out for all)")
            elif unknown:
                refuse("settings.events", f"unknown event(s): {', '.join(unknown)}")
            else:
                webhook.events = list(dict.fromkeys(value)) if value is not None else None
        elif name == "scope":
            if value not in SCOPES:
                refuse("scope", f"must be one of {', '.join(SCOPES)} (teams and clusters: none)")
            else:
                webhook.scope = value
        elif name == "scope_uuids":
            pipeline_ids = await _own_pipelines(session, webhook.organization_id, value or [])
            if pipeline_ids is None:
                refuse("scope_uuids", "must be UUIDs of this organization's pipelines")
            else:
                webhook.pipeline_ids = [str(p) for p in pipeline_ids]
        elif name == "branch_configuration":
            webhook.branch_configuration = (value or "").strip()
        elif name == "build_states":
            unknown = [key for key in value or {} if key not in BUILD_STATE_KEYS]
            if unknown:
                refuse("build_states", f"unknown key(s): {', '.join(unknown)}")
            else:
                webhook.build_states = {**webhook.build_states, **(value or {})}
        elif name == "tls_verify":
            if not isinstance(value, bool):
                refuse("settings.tls_verify", "must be true or false")
            else:
                webhook.tls_verify = value
        elif name == "description":
            webhook.description = value or ""
    if webhook.scope == "all":
        webhook.pipeline_ids = []
    elif not webhook.pipeline_ids and not errors:
        refuse("scope_uuids", "must name at least one pipeline when scope is some_projects")
    if errors:
        raise ValidationFailed(errors)


def _web_url(value: Any) -> bool:
    try:
        url = httpx.URL(value)
    except (TypeError, httpx.InvalidURL):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _token_mode(value: Any) -> TokenMode | None:
    try:
        return TokenMode(value)
    except ValueError:
        return None


async def _own_pipelines(
    session: AsyncSession, organization_id: uuid.UUID, values: list[Any]
) -> list[uuid.UUID] | None:
    ids = [parse_uuid(str(value)) for value in values]
    if any(id_ is None for id_ in ids):
        return None
    wanted = {id_ for id_ in ids if id_ is not None}
    found = await pipelines.get_many(session, wanted)
    if any(
        found.get(id_) is None or found[id_].organization_id != organization_id for id_ in wanted
    ):
        return None
    return list(wanted)


def enable(webhook: Webhook) -> None:
    """Enable, clearing the failure count and the reason it was disabled."""
    webhook.enabled = True
    webhook.disabled_reason = None
    webhook.consecutive_failures = 0
    webhook.updated_at = utcnow()


def disable(webhook: Webhook, reason: str) -> None:
    webhook.enabled = False
    webhook.disabled_reason = reason
    webhook.updated_at = utcnow()


async def delete(session: AsyncSession, webhook: Webhook) -> None:
    await session.delete(webhook)


async def get(session: AsyncSession, *, organization_id: uuid.UUID, webhook_id: str) -> Webhook:
    parsed = parse_uuid(webhook_id)
    webhook = await session.get(Webhook, parsed) if parsed is not None else None
    if webhook is None or webhook.organization_id != organization_id:
        raise NotFound.of("notification service")
    return webhook


async def list_for_organization(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Webhook]:
    """Oldest first, as Buildkite lists notification services; `after` is a keyset cursor."""
    query = select(Webhook).where(Webhook.organization_id == organization_id)
    if after is not None:
        created_at, id_ = after
        query = query.where(
            or_(
                Webhook.created_at > created_at,
                and_(Webhook.created_at == created_at, Webhook.id > id_),
            )
        )
    rows = await session.scalars(query.order_by(Webhook.created_at, Webhook.id).limit(limit))
    return list(rows)


async def enabled_in(
    session: AsyncSession, organization_ids: set[uuid.UUID]
) -> dict[uuid.UUID, list[Webhook]]:
    rows = await session.scalars(
        select(Webhook)
        .where(Webhook.organization_id.in_(organization_ids), Webhook.enabled.is_(True))
        .order_by(Webhook.created_at, Webhook.id)
    )
    found: dict[uuid.UUID, list[Webhook]] = {}
    for webhook in rows:
        found.setdefault(webhook.organization_id, []).append(webhook)
    return found


def subscribed(webhook: Webhook, event: str) -> bool:
    return webhook.events is None or event in webhook.events


def accepts(webhook: Webhook, *, pipeline_id: uuid.UUID | None, branch: str | None) -> bool:
    """Whether the pipeline and branch filters let a build's or job's event through; agent
    events (no pipeline) pass them."""
    if pipeline_id is None:
        return True
    if webhook.scope == "some_projects" and str(pipeline_id) not in webhook.pipeline_ids:
        return False
    return branch is None or branch_matches([webhook.branch_configuration], branch)
