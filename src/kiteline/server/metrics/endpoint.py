"""The `/metrics` route and who may read it.

One rule: when `KITELINE_METRICS_TOKEN` is set, a scrape must send it as
`Authorization: Bearer <token>`, from anywhere; when it is not set, only clients on the
loopback interface are answered (a scraper on the same machine, or a tunnel). It is not an API
request: no rate limit counts it."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import FastAPI, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from kiteline.server.kit.errors import Forbidden, Unauthorized
from kiteline.server.kit.http import request_transaction
from kiteline.server.kit.instruments import Instruments
from kiteline.server.metrics.gauges import database_gauges


def check_access(request: Request) -> None:
    token: str | None = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise Unauthorized(
                "Scraping /metrics needs `Authorization: Bearer <KITELINE_METRICS_TOKEN>`"
            )
        return
    if not _is_loopback(request.client.host if request.client else None):
        raise Forbidden(
            "/metrics answers loopback clients only; set KITELINE_METRICS_TOKEN on the "
            "server to scrape it from elsewhere with that bearer token"
        )


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install_metrics(app: FastAPI, instruments: Instruments) -> None:
    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        check_access(request)
        async with request_transaction(request, read_only=True) as session:
            counted = await database_gauges(session)
            # While the scrape holds its connection: the pool gauge counts it, always.
            recorded = instruments.render()
        return Response(recorded + counted, media_type=CONTENT_TYPE_PLAIN_0_0_4)
