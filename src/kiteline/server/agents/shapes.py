"""The Agent JSON that REST and webhooks show."""

from __future__ import annotations

from typing import Any

from kiteline.server.agents.models import Agent
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls


def agent_json(
    urls: Urls, org_slug: str, agent: Agent, job: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`job` is the agent's current job, already rendered (None when idle or abbreviated)."""
    queue = next(
        (tag.partition("=")[2] for tag in agent.meta_data if tag.startswith("queue=")), "default"
    )
    return {
        "id": str(agent.id),
        "graphql_id": graphql_id("Agent", agent.id),
        "url": urls.api(f"organizations/{org_slug}/agents/{agent.id}"),
        "web_url": urls.web(f"organizations/{org_slug}/agents/{agent.id}"),
        "name": agent.name,
        "connection_state": agent.connection_state,
        "hostname": agent.hostname,
        "ip_address": agent.ip_address,
        "user_agent": agent.user_agent,
        "version": agent.version,
        "arch": agent.arch,
        "queue": queue,
        "creator": None,
        "created_at": iso(agent.created_at),
        "connected_at": iso(agent.connected_at),
        "disconnected_at": iso(agent.disconnected_at),
        "lost_at": iso(agent.lost_at),
        "stopped_at": iso(agent.stopped_at),
        "last_job_finished_at": iso(agent.last_job_finished_at),
        "priority": agent.priority,
        "meta_data": list(agent.meta_data),
        "paused": False,
        "job": job,
    }
