"""The in-process Prometheus instruments (histograms, counters, the pool gauge) that the
request paths and the workers record into; `/metrics` renders them. What the database already
knows (jobs by state, agents, webhook backlog) is not kept here: it is counted at scrape time.

Every app gets its own instruments in its own registry, so that two apps in one process (the
tests, `kiteline up`) never add to each other's counts. When `PROMETHEUS_MULTIPROC_DIR` is set
(before the process starts), prometheus-client keeps the values in files in that directory
instead, and a scrape of any process sums every live process's files: several server
processes on one machine, and a `kiteline worker` beside them, show as one."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The `route` label of a request no route matched (a 404): raw paths would be unbounded.
UNMATCHED = "unmatched"

QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


class Instruments:
    """One app's (or one worker process's) instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir() is None:
            ProcessCollector(registry=self.registry)
        registry = self.registry
        self.queue_wait = Histogram(
            "kiteline_job_queue_wait_seconds",
            "Time from a job being scheduled to its agent starting it",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.dispatch_latency = Histogram(
            "kiteline_job_dispatch_latency_seconds",
            "Time from a job becoming runnable to a ping assigning it to an agent",
            buckets=DISPATCH_BUCKETS,
            registry=registry,
        )
        self.http_duration = Histogram(
            "kiteline_http_request_duration_seconds",
            "HTTP requests by method, route template and status code, in seconds",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "kiteline_webhook_attempts",
            "Webhook delivery attempts by outcome: succeeded, retrying (failed, tried again "
            "later) or failed (failed for good)",
            ["outcome"],
            registry=registry,
        )
        self.log_bytes = Counter(
            "kiteline_log_bytes_ingested",
            "Bytes of job log received from agents (uncompressed)",
            registry=registry,
        )
        self.log_windows_rendered = Counter(
            "kiteline_web_log_windows_rendered_for_streams",
            "Log windows rendered for the live streams of log followers (one per log and "
            "position per poll, however many followers are at it)",
            registry=registry,
        )
        self.pool_checked_out = Gauge(
            "kiteline_db_pool_checked_out",
            "Database connections checked out of the pool right now",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe_queue_wait(self, scheduled_at: datetime | None, started_at: datetime) -> None:
        if scheduled_at is not None:
            self.queue_wait.observe(_seconds(started_at - scheduled_at))

    def observe_dispatch(self, runnable_at: datetime | None, assigned_at: datetime) -> None:
        if runnable_at is not None:
            self.dispatch_latency.observe(_seconds(assigned_at - runnable_at))

    def watch_pool(self, engine: AsyncEngine) -> None:
        """Follow the engine's pool: the gauge goes up on checkout and down on checkin."""
        gauge = self.pool_checked_out
        event.listen(engine.sync_engine.pool, "checkout", lambda *_: gauge.inc())
        event.listen(engine.sync_engine.pool, "checkin", lambda *_: gauge.dec())

    def render(self) -> bytes:
        """The instruments in Prometheus text format: this app's, or in multi-process mode
        every live process's from the shared directory."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)

    def close(self) -> None:
        """On the way out of a process: its live gauges no longer count."""
        if multiprocess_dir() is not None:
            mark_process_dead(os.getpid())


def _seconds(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0)


class RequestTimer:
    """ASGI middleware: every HTTP request's duration, labelled by its route's template
    (`/v3/jobs/{job_id}/chunks`), never the raw path."""

    def __init__(self, app: ASGIApp, instruments: Instruments) -> None:
        self.app = app
        self.histogram = instruments.http_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.histogram.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The matched route's whole path template, prefixes included. FastAPI (0.120 on) leaves
    the route as declared, without its router's prefix, in `scope["route"]`, and the whole
    template in its routing context; earlier versions put a prefixed copy of the route there.
    tests/server/test_metrics.py checks the label of a prefixed route."""
    context = scope.get("fastapi", {}).get("effective_route_context")
    starlette_route = getattr(context, "starlette_route", None)
    for found in (starlette_route, context, scope.get("route")):
        template = getattr(found, "path_format", None) or getattr(found, "path", None)
        if template:
            return str(template)
    return UNMATCHED
