"""Kiteline's webhooks (Buildkite's "notification services"): list, create, their deliveries,
redeliver. Each is the dict the API answers (`id`, `settings`, `enabled`…); lists come in
cursor pages (`{"items": [...], "links": {"next": …}}`), followed to the end."""

from __future__ import annotations

from typing import Any

from kiteline.client._effects import Op, Stream, get_json, json_body, request, send
from kiteline.client._query import encode
from kiteline.client.config import ClientConfig


def _url(config: ClientConfig, org: str | None, *more: str) -> str:
    return config.rest("organizations", config.organization(org), "services", *more)


def _items(
    config: ClientConfig, url: str, filters: dict[str, Any], per_page: int | None
) -> Stream[dict[str, Any]]:
    """Every item of a cursor-paged list, each page fetched when the caller gets to it."""
    size = str(per_page or config.per_page)
    params: list[tuple[str, str]] | None = [*encode(filters), ("per_page", size)]
    page: str | None = url
    while page is not None:
        answer = yield from get_json(config, page, params)
        yield from answer["items"]
        following = answer.get("links", {}).get("next")
        page = config.on_api_origin(following) if following else None
        params = None  # the next link carries the query


def webhooks(
    config: ClientConfig, *, org: str | None = None, per_page: int | None = None
) -> Stream[dict[str, Any]]:
    """The organization's webhooks."""
    yield from _items(config, _url(config, org), {}, per_page)


def create_webhook(
    config: ClientConfig,
    url: str,
    *,
    events: list[str] | None = None,
    token_mode: str = "sha256",
    secret: str | None = None,
    description: str = "",
    pipeline_ids: list[str] | None = None,
    org: str | None = None,
) -> Op[dict[str, Any]]:
    """A webhook sending `events` (every event when None) to `url`, signed as `token_mode`
    says (`sha256`, `signature`, `token`) with `secret` (a random one when None); only the
    builds and jobs of `pipeline_ids` (pipeline ids) when given. The server pings it at once."""
    settings: dict[str, Any] = {"url": url, "token_mode": token_mode}
    if secret is not None:
        settings["token"] = secret
    if events:
        settings["events"] = events
    body: dict[str, Any] = {"provider": "webhook", "description": description, "settings": settings}
    if pipeline_ids:
        body |= {"scope": "some_projects", "scope_uuids": pipeline_ids}
    return (yield from _write(config, "POST", _url(config, org), body))


def webhook_deliveries(
    config: ClientConfig,
    webhook_id: str,
    *,
    state: str | None = None,
    org: str | None = None,
    per_page: int | None = None,
) -> Stream[dict[str, Any]]:
    """A webhook's deliveries, newest first, each with its attempts; `state` is `pending`,
    `succeeded` or `failed`."""
    url = _url(config, org, webhook_id, "deliveries")
    yield from _items(config, url, {"state": state}, per_page)


def redeliver(
    config: ClientConfig, webhook_id: str, delivery_id: str, *, org: str | None = None
) -> Op[dict[str, Any]]:
    """Send a delivery's body again, as a new delivery (queued; returned)."""
    url = _url(config, org, webhook_id, "deliveries", delivery_id, "redeliver")
    return (yield from _write(config, "POST", url, None))


def _write(config: ClientConfig, method: str, url: str, body: Any) -> Op[dict[str, Any]]:
    response = yield from send(config, request(config, method, url, json=body))
    answer: dict[str, Any] = json_body(response)
    return answer
