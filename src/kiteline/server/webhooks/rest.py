"""/v2/organizations/{org}/services: webhooks in Buildkite's notification-services shape, plus
Kiteline's delivery history, redelivery and ping under each service."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.kit.errors import BadRequest, ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.ids import graphql_id, parse_int
from kiteline.server.kit.pagination import Page
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.tokens.auth import api_transaction
from kiteline.server.users import service as users
from kiteline.server.users.service import User
from kiteline.server.users.shapes import user_json
from kiteline.server.webhooks import queue, service
from kiteline.server.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from kiteline.server.webhooks.queue import DeliveryState
from kiteline.server.webhooks.service import EVENTS

router = APIRouter(tags=["notification services"])

SERVICES = "/organizations/{org}/services"
SERVICE = SERVICES + "/{service_id}"
DELIVERY = SERVICE + "/deliveries/{delivery_id}"
READ, WRITE = "read_notification_services", "write_notification_services"
PAYLOAD_VERSION = 3
BAD_CURSOR = "`after` is not a cursor this list gave out"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    token: str | None = None
    token_mode: str | None = None
    version: int | None = None  # Kiteline sends one payload version; accepted and ignored
    events: list[str] | None = None
    tls_verify: bool | None = None


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    description: str | None = None
    branch_configuration: str | None = None
    scope: str | None = None
    scope_uuids: list[str] | None = None
    build_states: dict[str, bool] | None = None
    settings: WebhookSettings | None = None

    def fields(self) -> dict[str, Any]:
        """What was sent, `settings` flattened, as `service.create`/`update` take it."""
        given = self.model_dump(exclude_unset=True, exclude={"settings"})
        if self.settings is not None:
            given |= self.settings.model_dump(exclude_unset=True, exclude={"version"})
        return given


class ServiceCreate(ServiceUpdate):
    provider: str


def webhook_json(
    urls: Urls, org_slug: str, webhook: Webhook, creator: User | None
) -> dict[str, Any]:
    url = urls.api(f"organizations/{org_slug}/services/{webhook.id}")
    return {
        "id": str(webhook.id),
        "graphql_id": graphql_id("NotificationServiceWebhook", webhook.id),
        "url": url,
        "provider": {"id": service.PROVIDER, "name": "Webhook"},
        "description": webhook.description,
        "enabled": webhook.enabled,
        "scope": webhook.scope,
        "scope_uuids": list(webhook.pipeline_ids),
        "branch_configuration": webhook.branch_configuration,
        "build_states": dict(webhook.build_states),
        "settings": {
            "url": webhook.url,
            "version": PAYLOAD_VERSION,
            "token": webhook.token,
            "token_mode": webhook.token_mode,
            "events": list(webhook.events if webhook.events is not None else EVENTS),
            "tls_verify": webhook.tls_verify,
        },
        "created_at": iso(webhook.created_at),
        "created_by": user_json(creator),
        # Kiteline's additions: why it stopped, and where its history is.
        "disabled_reason": webhook.disabled_reason,
        "consecutive_failures": webhook.consecutive_failures,
        "deliveries_url": f"{url}/deliveries",
        "ping_url": f"{url}/ping",
    }


def delivery_json(
    urls: Urls,
    org_slug: str,
    delivery: WebhookDelivery,
    attempts: list[WebhookAttempt],
) -> dict[str, Any]:
    url = urls.api(
        f"organizations/{org_slug}/services/{delivery.webhook_id}/deliveries/{delivery.request_id}"
    )
    return {
        "id": str(delivery.request_id),
        "url": url,
        "event": delivery.event,
        "state": delivery.state,
        "attempts_count": delivery.attempts_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "created_at": iso(delivery.created_at),
        "finished_at": iso(delivery.finished_at),
        "redelivery_of": str(delivery.redelivery_of) if delivery.redelivery_of else None,
        "redeliver_url": f"{url}/redeliver",
        "payload": json.loads(delivery.payload),
        "attempts": [
            {
                "number": attempt.number,
                "started_at": iso(attempt.started_at),
                "duration_ms": attempt.duration_ms,
                "status_code": attempt.status_code,
                "response_excerpt": attempt.response_excerpt,
                "error": attempt.error,
                "succeeded": attempt.succeeded,
            }
            for attempt in attempts
        ],
    }


# --- cursor pages: {"items": [...], "links": {"self", "next"?}} ------------------------------


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def _uncursor(request: Request, count: int) -> list[str] | None:
    text = request.query_params.get("after")
    if not text:
        return None
    try:
        parts = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().split("|")
    except ValueError:  # not base64, or not UTF-8 inside
        parts = []
    if len(parts) != count:
        raise BadRequest(BAD_CURSOR)
    return parts


def _page(
    request: Request, urls: Urls, items: list[dict[str, Any]], next_cursor: str | None
) -> dict[str, Any]:
    def link(**replace: str) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "after"} | replace
        query = urlencode(sorted(params.items()))
        return f"{urls.base}{request.url.path}" + (f"?{query}" if query else "")

    links = {"self": link()}
    if next_cursor is not None:
        links["next"] = link(after=next_cursor)
    return {"items": items, "links": links}


# --- services ---------------------------------------------------------------------------------


async def _webhook(
    session: AsyncSession, user_id: uuid.UUID, org: str, service_id: str
) -> tuple[Organization, Webhook]:
    organization = await organizations.get_for_user(session, slug=org, user_id=user_id)
    webhook = await service.get(session, organization_id=organization.id, webhook_id=service_id)
    return organization, webhook


async def _render(
    session: AsyncSession, request: Request, org: str, webhooks: list[Webhook]
) -> list[dict[str, Any]]:
    creators = await users.get_many(session, {w.created_by_id for w in webhooks if w.created_by_id})
    urls = Urls(base_url(request))
    return [
        webhook_json(urls, org, w, creators.get(w.created_by_id) if w.created_by_id else None)
        for w in webhooks
    ]


@router.get(SERVICES)
@router.get(SERVICES + "/", include_in_schema=False)
async def list_services(request: Request, org: str) -> dict[str, Any]:
    limit = Page.from_request(request).per_page
    after = _uncursor(request, 2)
    try:
        keyset = (datetime.fromisoformat(after[0]), uuid.UUID(after[1])) if after else None
    except ValueError as error:
        raise BadRequest(BAD_CURSOR) from error
    async with api_transaction(request, READ) as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        webhooks = await service.list_for_organization(
            session, organization_id=organization.id, after=keyset, limit=limit + 1
        )
        items = await _render(session, request, org, webhooks[:limit])
    last = webhooks[limit - 1] if len(webhooks) > limit else None
    next_cursor = _cursor(last.created_at.isoformat(), str(last.id)) if last else None
    return _page(request, Urls(base_url(request)), items, next_cursor)


@router.post(SERVICES, status_code=201)
@router.post(SERVICES + "/", status_code=201, include_in_schema=False)
async def create_service(request: Request, org: str, body: ServiceCreate) -> dict[str, Any]:
    """Creates the webhook and sends it a `ping`."""
    async with api_transaction(request, WRITE) as (session, principal):
        organization = await organizations.get_for_user(
            session, slug=org, user_id=principal.user_id
        )
        webhook = await service.create(
            session,
            organization_id=organization.id,
            created_by_id=principal.user_id,
            fields=body.fields(),
        )
        await queue.ping(session, Urls(base_url(request)), organization, webhook)
        (rendered,) = await _render(session, request, org, [webhook])
    return rendered


@router.get(SERVICE)
@router.get(SERVICE + "/", include_in_schema=False)
async def get_service(request: Request, org: str, service_id: str) -> dict[str, Any]:
    async with api_transaction(request, READ) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        (rendered,) = await _render(session, request, org, [webhook])
    return rendered


@router.patch(SERVICE)
@router.patch(SERVICE + "/", include_in_schema=False)
async def update_service(
    request: Request, org: str, service_id: str, body: ServiceUpdate
) -> dict[str, Any]:
    """Changes the given fields and, as Buildkite does when settings change, sends a `ping`."""
    async with api_transaction(request, WRITE) as (session, principal):
        organization, webhook = await _webhook(session, principal.user_id, org, service_id)
        await service.update(session, webhook, body.fields())
        await queue.ping(session, Urls(base_url(request)), organization, webhook)
        (rendered,) = await _render(session, request, org, [webhook])
    return rendered


@router.delete(SERVICE, status_code=204)
@router.delete(SERVICE + "/", status_code=204, include_in_schema=False)
async def delete_service(request: Request, org: str, service_id: str) -> Response:
    """Deletes the webhook with its delivery history; pending deliveries are dropped."""
    async with api_transaction(request, WRITE) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        await service.delete(session, webhook)
    return Response(status_code=204)


@router.put(SERVICE + "/enable")
async def enable_service(request: Request, org: str, service_id: str) -> dict[str, Any]:
    """Enables the webhook, clearing its failure count; its pending deliveries resume."""
    async with api_transaction(request, WRITE) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        service.enable(webhook)
        (rendered,) = await _render(session, request, org, [webhook])
    return rendered


@router.put(SERVICE + "/disable")
async def disable_service(request: Request, org: str, service_id: str) -> dict[str, Any]:
    """Disables the webhook: no new events are queued for it, pending ones wait."""
    async with api_transaction(request, WRITE) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        service.disable(webhook, f"Disabled through the API by {principal.user.name}")
        (rendered,) = await _render(session, request, org, [webhook])
    return rendered


# --- deliveries (Kiteline) ----------------------------------------------------------------------


async def _render_deliveries(
    session: AsyncSession, request: Request, org: str, deliveries: list[WebhookDelivery]
) -> list[dict[str, Any]]:
    attempts = await queue.attempts_of(session, [d.id for d in deliveries])
    urls = Urls(base_url(request))
    return [delivery_json(urls, org, d, attempts[d.id]) for d in deliveries]


@router.post(SERVICE + "/ping", status_code=201)
async def ping_service(request: Request, org: str, service_id: str) -> dict[str, Any]:
    """Queues a `ping` delivery and answers it (pending; its attempts follow)."""
    async with api_transaction(request, WRITE) as (session, principal):
        organization, webhook = await _webhook(session, principal.user_id, org, service_id)
        delivery = await queue.ping(session, Urls(base_url(request)), organization, webhook)
        (rendered,) = await _render_deliveries(session, request, org, [delivery])
    return rendered


@router.get(SERVICE + "/deliveries")
async def list_deliveries(request: Request, org: str, service_id: str) -> dict[str, Any]:
    """Newest first, each with its attempts; `state` filters (pending, succeeded, failed)."""
    limit = Page.from_request(request).per_page
    after = _uncursor(request, 1)
    state = request.query_params.get("state") or None
    if state is not None and state not in tuple(DeliveryState):
        raise ValidationFailed.field("state", f"must be one of {', '.join(DeliveryState)}")
    if after is not None and parse_int(after[0]) is None:
        raise BadRequest(BAD_CURSOR)
    async with api_transaction(request, READ) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        deliveries = await queue.list_deliveries(
            session,
            webhook,
            state=state,
            before_id=int(after[0]) if after else None,
            limit=limit + 1,
        )
        items = await _render_deliveries(session, request, org, deliveries[:limit])
    next_cursor = _cursor(str(deliveries[limit - 1].id)) if len(deliveries) > limit else None
    return _page(request, Urls(base_url(request)), items, next_cursor)


@router.get(DELIVERY)
async def get_delivery(
    request: Request, org: str, service_id: str, delivery_id: str
) -> dict[str, Any]:
    async with api_transaction(request, READ) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        delivery = await queue.get_delivery(session, webhook, delivery_id)
        (rendered,) = await _render_deliveries(session, request, org, [delivery])
    return rendered


@router.post(DELIVERY + "/redeliver", status_code=201)
async def redeliver(
    request: Request, org: str, service_id: str, delivery_id: str
) -> dict[str, Any]:
    """Queues the same body again as a new delivery (its own request id), after the others."""
    async with api_transaction(request, WRITE) as (session, principal):
        _, webhook = await _webhook(session, principal.user_id, org, service_id)
        original = await queue.get_delivery(session, webhook, delivery_id)
        delivery = await queue.redeliver(session, webhook, original)
        (rendered,) = await _render_deliveries(session, request, org, [delivery])
    return rendered
