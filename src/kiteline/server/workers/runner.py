"""Runs the sweeps in a loop, and webhook delivery beside them, until told to stop; one failing
sweep never stops the others."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.blobs import BlobStore
from kiteline.server.kit import limits
from kiteline.server.kit.instruments import Instruments
from kiteline.server.webhooks.delivery import run_delivery
from kiteline.server.workers import sweeps
from kiteline.server.workers.housekeeping import run_housekeeping
from kiteline.server.workers.leader import sweep_while_leading
from kiteline.settings import Settings

log = logging.getLogger("kiteline.workers")


async def run_workers(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    stop: asyncio.Event,
    instruments: Instruments,
    store: BlobStore,
) -> None:
    """The sweeps, log compaction and retention, and webhook delivery, side by side."""
    limits.activate(settings)  # a trigger step's build is held to this server's limits
    await asyncio.gather(
        _run_sweeps(sessions, settings, stop),
        run_housekeeping(sessions, store, settings, stop),
        run_delivery(sessions, settings, stop, instruments),
    )


async def _run_sweeps(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """The timeouts, lost agents, expiry and schedules, in the one process that leads them."""
    await sweep_while_leading(
        sessions.kw["bind"],
        settings,
        stop,
        lambda: (
            ("timeouts", lambda: sweeps.time_out_jobs(sessions)),
            ("lost agents", lambda: sweeps.lose_silent_agents(sessions, settings)),
            ("expiry", lambda: sweeps.expire_jobs(sessions, settings)),
            ("schedules", lambda: sweeps.fire_schedules(sessions)),
        ),
    )
