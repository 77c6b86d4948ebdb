"""The gauges counted from the database at scrape time, through the domains' services: one
cheap aggregate each, so every replica reports the same numbers and nothing is kept in
memory that a second replica (or a restart) would make wrong."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.db import utcnow
from kiteline.server.organizations import service as organizations
from kiteline.server.webhooks import fanout, queue


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _age(oldest: datetime | None, now: datetime) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


async def database_gauges(session: AsyncSession) -> bytes:
    """The database's gauges in Prometheus text format."""
    now = utcnow()
    unfinished = GaugeMetricFamily(
        "kiteline_jobs",
        "Command jobs not yet finished, by state and queue",
        labels=["state", "queue"],
    )
    organization_ids = await organizations.all_ids(session)
    counts = await jobs.unfinished_by_queue(session, organization_ids)
    for (state, queue_name), count in sorted(counts.items()):
        unfinished.add_metric([state, queue_name], count)

    agent_states = GaugeMetricFamily(
        "kiteline_agents", "Registered agents by connection state", labels=["connection_state"]
    )
    for state, count in sorted((await agents.counts_by_connection_state(session)).items()):
        agent_states.add_metric([state], count)

    deliveries = await queue.backlog(session)
    pending = GaugeMetricFamily(
        "kiteline_webhook_deliveries_pending",
        "Webhook deliveries not yet delivered (waiting, being sent, or due for a retry)",
        value=deliveries.pending,
    )
    lag = GaugeMetricFamily(
        "kiteline_webhook_delivery_lag_seconds",
        "Age of the oldest webhook delivery not yet delivered (0 when none waits)",
        value=_age(deliveries.oldest_created_at, now),
    )

    events = await fanout.backlog(session)
    backlog = GaugeMetricFamily(
        "kiteline_events_backlog",
        "Events in the outbox not yet turned into webhook deliveries",
        value=events.events,
    )
    backlog_age = GaugeMetricFamily(
        "kiteline_events_backlog_age_seconds",
        "Age of the oldest event not yet turned into webhook deliveries (0 when none waits)",
        value=_age(events.oldest_created_at, now),
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([unfinished, agent_states, pending, lag, backlog, backlog_age]))
    return generate_latest(registry)
