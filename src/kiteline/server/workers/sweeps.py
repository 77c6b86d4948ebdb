"""The periodic sweeps: job timeouts, lost agents, job expiry, pipeline schedules. Each runs in
its own transaction and is safe to run in several processes at once (rows are locked and skipped on
PostgreSQL; SQLite has one writer)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.agents import availability
from kiteline.server.agents import service as agents
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.db import transaction, utcnow
from kiteline.server.schedules import service as schedules
from kiteline.settings import Settings


async def time_out_jobs(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        overdue = await jobs.overdue(session, utcnow())
        for job in overdue:
            await build_transitions.time_out_job(session, job=job)
    return len(overdue)


async def lose_silent_agents(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Agents silent for `lost_after` while the agent API was served: none while no process
    serves it, and none until `lost_after` has passed since the latest (re)start of one."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.agent_lost_after_seconds)
    async with transaction(sessions) as session:
        serving_since = await availability.serving_since(session, now)
        if serving_since is None or serving_since > cutoff:
            return 0
        silent = await agents.silent_since(session, cutoff)
        for agent in silent:
            agents.mark_lost(session, agent)
            await build_transitions.lose_jobs_of(session, agent_id=agent.id)
    return len(silent)


async def expire_jobs(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    cutoff = utcnow() - timedelta(seconds=settings.job_expiry_seconds)
    async with transaction(sessions) as session:
        stale = await jobs.unclaimed_since(session, cutoff)
        for job in stale:
            await build_transitions.expire_job(session, job=job)
    return len(stale)


async def fire_schedules(sessions: async_sessionmaker[AsyncSession]) -> int:
    """A build for each schedule that is due, each in its own transaction (one failing
    schedule holds up no other); another process firing the same one finds it claimed."""
    now = utcnow()
    async with transaction(sessions, read_only=True) as session:
        due = await schedules.due(session, now)
    fired = 0
    for schedule_id, due_at in due:
        async with transaction(sessions) as session:
            if await schedules.fire(session, schedule_id, due_at=due_at, now=now) is not None:
                fired += 1
    return fired
