"""`/organizations/{org}/services`: the organization's webhooks (Buildkite's notification
services) — list, create, edit, enable or disable — and each one's delivery history with
"Redeliver" and "Ping", through the same webhooks services as REST."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.kit.http import base_url
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.web.auth import Viewer, page_transaction
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render
from kiteline.server.webhooks import queue
from kiteline.server.webhooks import service as webhooks
from kiteline.server.webhooks.service import Webhook
from kiteline.server.webhooks.signing import TokenMode

router = page_router()

SERVICES = "/organizations/{org}/services"
SERVICE = SERVICES + "/{service_id}"
DELIVERIES_PER_PAGE = 20
#: How each signature mode is explained beside its choice.
TOKEN_MODES = (
    (TokenMode.SHA256, "X-Buildkite-Signature: sha256=HMAC-SHA256(token, body)"),
    (
        TokenMode.SIGNATURE,
        "X-Buildkite-Signature: timestamp=T,signature=HMAC-SHA256(token, T.body)",
    ),
    (TokenMode.TOKEN, "X-Buildkite-Token: the token itself"),
)


@dataclass
class WebhookForm:
    """What the webhook form shows: the values given (or the webhook's) and what was wrong."""

    description: str = ""
    url: str = ""
    events: list[str] = field(default_factory=lambda: list(webhooks.EVENTS))
    token_mode: str = TokenMode.SHA256.value
    token: str = ""
    branch_configuration: str = ""
    tls_verify: bool = True
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookForm:
        return cls(
            description=webhook.description,
            url=webhook.url,
            events=list(webhook.events if webhook.events is not None else webhooks.EVENTS),
            token_mode=webhook.token_mode,
            token=webhook.token,
            branch_configuration=webhook.branch_configuration,
            tls_verify=webhook.tls_verify,
        )

    @classmethod
    def submitted(cls, form: FormData) -> WebhookForm:
        return cls(
            description=str(form.get("description") or "").strip(),
            url=str(form.get("url") or "").strip(),
            events=[str(event) for event in form.getlist("events")],
            token_mode=str(form.get("token_mode") or ""),
            token=str(form.get("token") or "").strip(),
            branch_configuration=str(form.get("branch_configuration") or "").strip(),
            tls_verify=form.get("tls_verify") == "true",
        )

    def fields(self, *, creating: bool) -> dict[str, Any]:
        """As REST's `fields()` gives them to the service. Every event ticked is "every
        event" (events added later included), as a webhook created without `events` is."""
        given: dict[str, Any] = {
            "description": self.description,
            "url": self.url,
            "events": None if set(webhooks.EVENTS) <= set(self.events) else self.events,
            "token_mode": self.token_mode,
            "branch_configuration": self.branch_configuration,
            "tls_verify": self.tls_verify,
        }
        if self.token or not creating:  # empty on creation: the service makes one up
            given["token"] = self.token
        if creating:
            given["provider"] = webhooks.PROVIDER
        return given

    def refused(self, error: ValidationFailed) -> WebhookForm:
        for item in error.errors:
            name = item["field"].removeprefix("settings.")
            self.errors.setdefault(name, []).append(item["code"])
        return self


def _form_page(
    request: Request,
    viewer: Viewer,
    organization: Organization,
    form: WebhookForm,
    *,
    webhook: Webhook | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    return render(
        request,
        "services/edit.html" if webhook else "services/new.html",
        viewer=viewer,
        organization=organization,
        form=form,
        webhook=webhook,
        events=webhooks.EVENTS,
        token_modes=TOKEN_MODES,
        status=status,
        **context,
    )


async def _webhook(
    session: AsyncSession, viewer: Viewer, org: str, service_id: str
) -> tuple[Organization, Webhook]:
    """The webhook as REST finds it, for a member of its organization (another's: 404)."""
    organization = viewer.organization(org)
    webhook = await webhooks.get(session, organization_id=organization.id, webhook_id=service_id)
    return organization, webhook


def _service_path(org: str, webhook_id: uuid.UUID) -> str:
    return f"/organizations/{org}/services/{webhook_id}"


@router.get(SERVICES)
async def services_page(request: Request, org: str) -> Response:
    async with page_transaction(request) as (session, viewer):
        organization = viewer.organization(org)
        listed = await webhooks.list_for_organization(
            session, organization_id=organization.id, after=None, limit=500
        )
        latest = {}
        for webhook in listed:
            found = await queue.list_deliveries(
                session, webhook, state=None, before_id=None, limit=1
            )
            latest[webhook.id] = found[0] if found else None
        return render(
            request,
            "services/index.html",
            viewer=viewer,
            organization=organization,
            webhooks=listed,
            latest=latest,
            all_events=len(webhooks.EVENTS),
        )


async def _new_service_page(
    request: Request, org: str, form: WebhookForm, status: int = 200
) -> Response:
    """The form for a new webhook (in a read transaction of its own: after a refusal, the
    writing one has rolled back)."""
    async with page_transaction(request, read_only=True) as (_session, viewer):
        organization = viewer.organization(org)
        return _form_page(request, viewer, organization, form, status=status)


@router.get(SERVICES + "/new")
async def new_service_page(request: Request, org: str) -> Response:
    return await _new_service_page(request, org, WebhookForm())


@router.post(SERVICES)
async def create_service(request: Request, org: str) -> Response:
    """REST's POST …/services: creates the webhook and sends it a `ping`."""
    form = WebhookForm.submitted(await request.form())
    try:
        async with page_transaction(request) as (session, viewer):
            organization = viewer.organization(org)
            webhook = await webhooks.create(
                session,
                organization_id=organization.id,
                created_by_id=viewer.user.id,
                fields=form.fields(creating=True),
            )
            await queue.ping(session, Urls(base_url(request)), organization, webhook)
            path = _service_path(org, webhook.id)
    except ValidationFailed as error:
        return await _new_service_page(request, org, form.refused(error), status=422)
    return RedirectResponse(path, status_code=303)


async def _service_page(
    request: Request,
    org: str,
    service_id: str,
    *,
    form: WebhookForm | None = None,
    status: int = 200,
) -> Response:
    before = request.query_params.get("before", "")
    async with page_transaction(request, read_only=True) as (session, viewer):
        organization, webhook = await _webhook(session, viewer, org, service_id)
        deliveries = await queue.list_deliveries(
            session,
            webhook,
            state=None,
            before_id=int(before) if before.isdigit() else None,
            limit=DELIVERIES_PER_PAGE + 1,
        )
        shown = deliveries[:DELIVERIES_PER_PAGE]
        attempts = await queue.attempts_of(session, [d.id for d in shown])
        return _form_page(
            request,
            viewer,
            organization,
            form or WebhookForm.of(webhook),
            webhook=webhook,
            status=status,
            deliveries=shown,
            attempts=attempts,
            older=shown[-1].id if len(deliveries) > DELIVERIES_PER_PAGE else None,
            pending=queue.DeliveryState.PENDING,
        )


@router.get(SERVICE)
async def service_page(request: Request, org: str, service_id: str) -> Response:
    return await _service_page(request, org, service_id)


@router.post(SERVICE)
async def update_service(request: Request, org: str, service_id: str) -> Response:
    """REST's PATCH …/services/{id} with the form's fields; sends a `ping`, as REST does."""
    form = WebhookForm.submitted(await request.form())
    try:
        async with page_transaction(request) as (session, viewer):
            organization, webhook = await _webhook(session, viewer, org, service_id)
            await webhooks.update(session, webhook, form.fields(creating=False))
            await queue.ping(session, Urls(base_url(request)), organization, webhook)
    except ValidationFailed as error:
        return await _service_page(request, org, service_id, form=form.refused(error), status=422)
    return RedirectResponse(_service_path(org, webhook.id), status_code=303)


@router.post(SERVICE + "/ping")
async def ping_service(request: Request, org: str, service_id: str) -> Response:
    """REST's POST …/services/{id}/ping."""
    async with page_transaction(request) as (session, viewer):
        organization, webhook = await _webhook(session, viewer, org, service_id)
        await queue.ping(session, Urls(base_url(request)), organization, webhook)
    return RedirectResponse(_service_path(org, webhook.id) + "#deliveries", status_code=303)


@router.post(SERVICE + "/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, org: str, service_id: str, delivery_id: str) -> Response:
    """REST's POST …/deliveries/{id}/redeliver: the same body again, as a new delivery with
    its own X-Buildkite-Request, after the others."""
    async with page_transaction(request) as (session, viewer):
        _, webhook = await _webhook(session, viewer, org, service_id)
        original = await queue.get_delivery(session, webhook, delivery_id)
        await queue.redeliver(session, webhook, original)
    return RedirectResponse(_service_path(org, webhook.id) + "#deliveries", status_code=303)


@router.post(SERVICE + "/enable")
async def enable_service(request: Request, org: str, service_id: str) -> Response:
    """REST's PUT …/enable: its failure count cleared, its pending deliveries resume."""
    async with page_transaction(request) as (session, viewer):
        _, webhook = await _webhook(session, viewer, org, service_id)
        webhooks.enable(webhook)
    return RedirectResponse(_service_path(org, webhook.id), status_code=303)


@router.post(SERVICE + "/disable")
async def disable_service(request: Request, org: str, service_id: str) -> Response:
    """REST's PUT …/disable: no new events are queued for it."""
    async with page_transaction(request) as (session, viewer):
        _, webhook = await _webhook(session, viewer, org, service_id)
        webhooks.disable(webhook, f"Disabled in the web UI by {viewer.name}")
    return RedirectResponse(_service_path(org, webhook.id), status_code=303)
