"""Stopping an agent, as REST, GraphQL and the web UI ask for it: gracefully (its current job
finishes first) or forced (its current job is canceled first)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service
from kiteline.server.agents.models import Agent
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.jobs import service as jobs


async def stop(session: AsyncSession, agent: Agent, *, force: bool) -> None:
    """Marks the agent `stopping` (only a connected agent can be stopped) and, when forced,
    cancels the job it is running."""
    service.request_stop(session, agent)
    if force:
        job = await jobs.current_for_agent(session, agent.id)
        if job is not None:
            await build_transitions.cancel_job(session, job=job)
