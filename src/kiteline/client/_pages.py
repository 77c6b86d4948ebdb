"""Lists page by page: `per_page` on the first request, then the `Link` header's `rel="next"`
until a page has none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiteline.client._effects import M, Op, Request, Stream, json_body, request, send
from kiteline.client._query import encode
from kiteline.client.config import ClientConfig
from kiteline.client.errors import ApiError


def first_page(
    config: ClientConfig, url: str, filters: Mapping[str, Any], per_page: int | None
) -> Request:
    params = [*encode(filters), ("per_page", str(per_page or config.per_page))]
    return request(config, "GET", url, params=params)


def fetch_page(
    config: ClientConfig, page: Request, model: type[M]
) -> Op[tuple[list[M], Request | None]]:
    """One page's items and the request for the next page (None on the last)."""
    response = yield from send(config, page)
    body = json_body(response)
    if not isinstance(body, list):
        raise ApiError(
            response.status_code,
            f"Expected a JSON list, got {type(body).__name__}",
            body=body,
            method=page.method,
            url=str(response.request.url),
        )
    link = response.links.get("next", {}).get("url")
    following = request(config, "GET", config.on_api_origin(link)) if link else None
    if following is not None and following.url == str(response.request.url):
        following = None  # a page that points at itself would loop forever
    return [model.model_validate(item) for item in body], following


def paginate(
    config: ClientConfig,
    url: str,
    model: type[M],
    filters: Mapping[str, Any],
    per_page: int | None = None,
) -> Stream[M]:
    """Every item of every page, fetching each page only when the caller gets to it."""
    page: Request | None = first_page(config, url, filters, per_page)
    while page is not None:
        items, page = yield from fetch_page(config, page, model)
        yield from items


def collect(
    config: ClientConfig,
    url: str,
    model: type[M],
    filters: Mapping[str, Any],
    per_page: int | None = None,
) -> Op[list[M]]:
    """Every item of every page, for operations that need the whole list first."""
    found: list[M] = []
    page: Request | None = first_page(config, url, filters, per_page)
    while page is not None:
        items, page = yield from fetch_page(config, page, model)
        found += items
    return found
