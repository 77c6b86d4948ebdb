"""Agents of an organization: list (connected ones), get, stop."""

from __future__ import annotations

from typing import Any

from kiteline.client._effects import Op, Stream, get_model, write
from kiteline.client._pages import paginate
from kiteline.client.config import ClientConfig
from kiteline.client.models import Agent


def _url(config: ClientConfig, org: str | None, *more: str) -> str:
    return config.rest("organizations", config.organization(org), "agents", *more)


def agents(
    config: ClientConfig,
    *,
    org: str | None = None,
    name: str | None = None,
    hostname: str | None = None,
    version: str | None = None,
    per_page: int | None = None,
    **filters: Any,
) -> Stream[Agent]:
    """The organization's connected (and stopping) agents, as Buildkite lists them."""
    filters = {"name": name, "hostname": hostname, "version": version, **filters}
    yield from paginate(config, _url(config, org), Agent, filters, per_page)


def agent(config: ClientConfig, agent_id: str, *, org: str | None = None) -> Op[Agent]:
    """One agent by id, in any connection state."""
    return (yield from get_model(config, _url(config, org, agent_id), Agent))


def stop_agent(
    config: ClientConfig, agent_id: str, *, force: bool = False, org: str | None = None
) -> Op[None]:
    """Ask an agent to stop: after its current job (the default), or at once, canceling that
    job (`force=True`, which is what the API does when not told)."""
    yield from write(config, "PUT", _url(config, org, agent_id, "stop"), {"force": force})
