"""Page-based pagination as Buildkite does it: page/per_page and a `Link` header."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request, Response

from kiteline.server.kit.errors import BadRequest
from kiteline.server.kit.query import integer

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
#: Deeper pages are refused (as Buildkite refuses deep build listings): narrow with filters.
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Page:
    number: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.per_page

    @classmethod
    def from_request(cls, request: Request) -> Page:
        """`page` from 1 (0 is taken as 1: pybuildkite starts there), `per_page` capped to
        1..100; anything but a whole number is a 400 naming the parameter."""
        query = request.query_params
        number = max(integer(query, "page", 1), 1)
        if number > MAX_PAGE:
            raise BadRequest(
                f"Listing this deep is not supported (page {number} > {MAX_PAGE}). "
                "Please narrow your query using filters."
            )
        per_page = integer(query, "per_page", DEFAULT_PER_PAGE)
        return cls(number=number, per_page=min(max(per_page, 1), MAX_PER_PAGE))


def link_header(
    request: Request,
    base: str,
    page: Page,
    *,
    total: int | None = None,
    has_next: bool = False,
) -> str | None:
    """`<url>; rel="first", <url>; rel="prev", <url>; rel="next", <url>; rel="last"`.

    With `total`, every link; without it (lists too long to count on every request, such as
    builds), `last` is left out and `next` appears when `has_next`. Query parameters are kept
    and sorted, `page` replaced and `per_page` always present, so that `page=N` is never the
    last parameter (pybuildkite's parser needs that).
    """
    last = max(math.ceil(total / page.per_page), 1) if total is not None else None
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k not in ("page", "per_page")
    ]

    def url(number: int) -> str:
        query = sorted([*params, ("page", str(number)), ("per_page", str(page.per_page))])
        return f"{base}{request.url.path}?{urlencode(query)}"

    links = []
    if page.number > 1:
        links.append(f'<{url(1)}>; rel="first"')
        links.append(f'<{url(min(page.number - 1, last or page.number))}>; rel="prev"')
    if last is None:
        if has_next:
            links.append(f'<{url(page.number + 1)}>; rel="next"')
    elif page.number < last:
        links.append(f'<{url(page.number + 1)}>; rel="next"')
        links.append(f'<{url(last)}>; rel="last"')
    return ", ".join(links) or None


def add_link_header(
    response: Response,
    request: Request,
    base: str,
    page: Page,
    *,
    total: int | None = None,
    has_next: bool = False,
) -> None:
    link = link_header(request, base, page, total=total, has_next=has_next)
    if link:
        response.headers["Link"] = link
