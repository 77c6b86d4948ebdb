"""Builds the ASGI app: /v2 REST, /v1 GraphQL, /v3 agent API, /healthz, /metrics, the web UI
at `/`; opens the database in its lifespan."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text

from kiteline import __version__
from kiteline.server.agent_api.artifacts import router as agent_artifacts_router
from kiteline.server.agent_api.in_job import router as in_job_router
from kiteline.server.agent_api.routes import router as agent_api_router
from kiteline.server.agents.rest import router as agents_router
from kiteline.server.agents.sightings import Sightings
from kiteline.server.annotations.rest import router as annotations_router
from kiteline.server.artifacts.rest import router as artifacts_router
from kiteline.server.blobs import open_blob_store
from kiteline.server.builds.meta_data_rest import router as meta_data_router
from kiteline.server.builds.rest import router as builds_router
from kiteline.server.graphql.endpoint import install_graphql
from kiteline.server.jobs.rest import router as jobs_router
from kiteline.server.kit import offload
from kiteline.server.kit.db import asyncpg_dsn, create_engine, create_sessionmaker, transaction
from kiteline.server.kit.http import install_error_handlers
from kiteline.server.kit.instruments import Instruments, RequestTimer
from kiteline.server.kit.limits import LimitsMiddleware
from kiteline.server.kit.migrate import upgrade
from kiteline.server.kit.notify import PostgresRelay
from kiteline.server.kit.ratelimit import install_rate_limits
from kiteline.server.kit.routing import index_routes
from kiteline.server.kit.signing import UrlSigner, load_or_create_secret
from kiteline.server.metrics.endpoint import install_metrics
from kiteline.server.openapi import install_openapi
from kiteline.server.organizations.rate_limit_rest import router as rate_limit_router
from kiteline.server.organizations.rest import router as organizations_router
from kiteline.server.pipelines.rest import router as pipelines_router
from kiteline.server.sources.rest import deliver_router
from kiteline.server.sources.rest import router as sources_router
from kiteline.server.tokens.rest import router as tokens_router
from kiteline.server.users.rest import router as users_router
from kiteline.server.web.live import LiveHub
from kiteline.server.web.pages.build import feed_block
from kiteline.server.web.pages.build_feed import BuildFeeds
from kiteline.server.web.pages.log_windows import log_window_renderer
from kiteline.server.web.setup import install_web
from kiteline.server.webhooks.rest import router as webhooks_router
from kiteline.server.workers.presence import serving_presence
from kiteline.server.workers.runner import run_workers
from kiteline.settings import Settings

#: The REST API's routers, each included at `/v2` directly: a router included in another is
#: matched twice over (once to choose it, once to handle), and its routes once more.
REST_ROUTERS: tuple[APIRouter, ...] = (
    organizations_router,
    rate_limit_router,
    users_router,
    tokens_router,
    pipelines_router,
    builds_router,
    jobs_router,
    agents_router,
    annotations_router,
    meta_data_router,
    artifacts_router,
    webhooks_router,
    sources_router,
)


def prepare_serving_process() -> None:
    """In a server process, once the app is built, before it serves:
    - move every object alive now (modules, the schema, the app) out of the garbage
      collector's sight; otherwise each full collection rescans them all, about a third of a
      large GraphQL request's time (not for processes that build many apps, tests: frozen
      objects are never freed);
    - make threads hand the GIL back to the event loop sooner
      (`kit/offload.hand_over_quickly`, decision 0046)."""
    gc.collect()
    gc.freeze()
    offload.hand_over_quickly()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url, echo=settings.log_sql)
        instruments.watch_pool(engine)
        await upgrade(engine)
        app.state.engine = engine
        app.state.sessions = create_sessionmaker(engine)
        app.state.blobs = open_blob_store(settings)
        app.state.secret_key = load_or_create_secret(settings.secret_key, settings.data_dir)
        app.state.signer = UrlSigner(app.state.secret_key)
        app.state.live = LiveHub(
            app.state.sessions,
            poll_seconds=settings.live_poll_seconds,
            log_windows=log_window_renderer(
                app.state.sessions, app.state.blobs, instruments.log_windows_rendered.inc
            ),
        )
        app.state.build_feeds = BuildFeeds(app.state.live, app.state.sessions, feed_block)
        app.state.sightings = Sightings(app.state.sessions)
        relay = None
        if engine.dialect.name == "postgresql":
            relay = PostgresRelay(asyncpg_dsn(engine))
            await relay.start()
        stop_workers = asyncio.Event()
        try:
            # Announced before the sweeps start: the lost-agent sweep counts silence from it.
            async with serving_presence(app.state.sessions):
                workers = (
                    asyncio.create_task(
                        run_workers(
                            app.state.sessions, settings, stop_workers, instruments, app.state.blobs
                        )
                    )
                    if settings.run_workers
                    else None
                )
                try:
                    yield
                finally:
                    stop_workers.set()
                    if workers is not None:
                        await workers
        finally:
            await app.state.sightings.aclose()
            await app.state.build_feeds.aclose()
            await app.state.live.aclose()
            if relay is not None:
                await relay.stop()
            await app.state.rate_limiter.aclose()
            await engine.dispose()
            instruments.close()

    app = FastAPI(
        title="Kiteline",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/v2/openapi.json",
        docs_url=None,  # served by the web UI, from the package
        redoc_url=None,
        strict_content_type=False,
    )
    app.state.settings = settings
    instruments = app.state.instruments = Instruments()
    install_error_handlers(app)
    install_rate_limits(app, settings)
    install_graphql(app, settings)
    # Routes are matched in order, one pattern at a time: the agents' few /v3 routes, which
    # take most of the requests, go before the REST API's many.
    app.include_router(agent_api_router, prefix="/v3")
    app.include_router(in_job_router, prefix="/v3")
    app.include_router(agent_artifacts_router, prefix="/v3")
    for rest in REST_ROUTERS:
        app.include_router(rest, prefix="/v2")
    app.include_router(deliver_router)  # code hosts' webhooks, at each pipeline's webhook_url

    @app.get("/v2/meta", tags=["meta"])
    async def meta() -> dict[str, Any]:
        """Buildkite lists the addresses its webhooks come from; Kiteline has no fixed ones."""
        return {"webhook_ips": []}

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> dict[str, Any]:
        # Read-only: on SQLite it never waits for the write lock a long write holds.
        async with transaction(request.app.state.sessions, read_only=True) as session:
            await session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "pid": os.getpid()}

    install_metrics(app, instruments)
    install_openapi(app)
    # Outermost: it times the whole request, error handling and rate-limit headers too.
    app.add_middleware(RequestTimer, instruments=instruments)
    install_web(app)  # last: its `/{org}…` patterns must not shadow the APIs' routes
    app.add_middleware(LimitsMiddleware, settings=settings)  # outermost: before any body is read
    index_routes(app.router)  # last: every route is in place
    return app


def create_served_app() -> FastAPI:
    """The app of one of `kiteline server --workers N`'s processes: settings from the
    environment, the process prepared to serve."""
    app = create_app()
    prepare_serving_process()
    return app
