"""Agents seen by calls that write nothing else, written a moment later in batches.

On SQLite one transaction writes at a time, and Kiteline's writers queue for it in-process
(decision 0009). An idle agent's ping only reads (is there a job for it?) but marks the agent
seen, a write: behind a build of 20,000 jobs being written, it waited seconds. So a ping that
finds the write queue taken reads in a read-only transaction instead, and notes the sighting
here; one task per process writes the sightings noted meanwhile as soon as the queue lets it
(each `last_seen_at` only moves forward), then the next batch. See decision 0030.

Nothing is lost that liveness needs: a sighting waits here at most as long as the write ahead
of it, during which the process's own `serving_processes` renewal waits as well, and a
renewal more than 5 s late restarts the lost-agent grace (decision 0014) everywhere. A
process killed with sightings unwritten is restarted with a full grace for every agent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.agents import service as agents
from kiteline.server.kit.db import transaction

log = logging.getLogger(__name__)


class Sightings:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.pending: dict[uuid.UUID, datetime] = {}
        self.writing: asyncio.Task[None] | None = None

    def note(self, agent_id: uuid.UUID, at: datetime) -> None:
        """The agent was seen at `at`: written with the next batch."""
        if agent_id not in self.pending or self.pending[agent_id] < at:
            self.pending[agent_id] = at
        if self.writing is None or self.writing.done():
            self.writing = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self.pending:
            batch: dict[uuid.UUID, datetime] = {}
            try:
                async with transaction(self.sessions) as session:
                    batch, self.pending = self.pending, {}
                    await agents.mark_seen_at(session, batch)
            except Exception:  # the agents' next calls mark them again
                log.exception("writing %d agent sightings failed", len(batch))

    async def aclose(self) -> None:
        """Write what is noted (at shutdown)."""
        if self.writing is not None:
            await self.writing
