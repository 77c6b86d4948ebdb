"""Claiming a job for an agent: the job it holds, the queue in dispatch order, concurrency
groups; `claim_next` assigns, `may_claim` only looks (a ping that finds nothing writes nothing).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.jobs import transitions
from kiteline.server.jobs.matching import rules_match, tags_to_map
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import ON_AGENT, JobState, JobType
from kiteline.server.kit.db import execute_core, utcnow

#: How many runnable jobs a ping looks at before giving up on finding one its tags match.
CLAIM_CANDIDATES = 200
CLAIM_BATCH = 10
#: The queue's slices a ping reads (skip, take): the first few, where the job usually is, then
#: the rest of the candidates at once. Each read sorts the organization's runnable jobs that
#: tie on priority and runnable time (a large build's, all of them): 20 reads of 10 made a
#: ping behind a build of 20,000 jobs take seconds.
CLAIM_SLICES = ((0, CLAIM_BATCH), (CLAIM_BATCH, CLAIM_CANDIDATES - CLAIM_BATCH))


def current_of(agent_id: Any, *columns: Any) -> Select[Any]:
    """The agent's current job (the oldest assignment still on it), as `columns`."""
    return (
        select(*columns)
        .where(Job.agent_id == agent_id, Job.state.in_([s.value for s in ON_AGENT]))
        .order_by(Job.assigned_at)
        .limit(1)
    )


# The statements of a claim, built once (as jobs/refs.py builds the job's ref).
_HELD = current_of(bindparam("agent_id"), Job.id, Job.state)


class Held(NamedTuple):
    """The job an agent holds (its oldest assignment still on it): `claim_next`'s first look."""

    id: uuid.UUID
    state: str


def held_columns(agent_id: Any) -> tuple[Any, Any]:
    """The id and state of the job `agent_id` (a column) holds, as two scalar subqueries: a
    caller reading the agent's row reads them in the same statement (`claim_next(held=…)`)."""
    return (
        current_of(agent_id, Job.id).scalar_subquery(),
        current_of(agent_id, Job.state).scalar_subquery(),
    )


_QUEUE = (
    select(Job.id, Job.agent_query_rules, Job.concurrency_group, Job.concurrency, Job.runnable_at)
    .where(
        Job.organization_id == bindparam("organization_id"),
        Job.state == JobState.SCHEDULED,
        Job.type == JobType.SCRIPT,
    )
    .order_by(Job.priority.desc(), Job.runnable_at, Job.position, Job.id)
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)


class Claim(NamedTuple):
    """The job a ping hands its agent; `runnable_at` and `assigned_at` only when this ping
    assigned it (not when an earlier one did and its answer was lost)."""

    job_id: uuid.UUID
    runnable_at: datetime | None = None
    assigned_at: datetime | None = None


#: `claim_next` reads the held job itself.
UNREAD = Held(uuid.UUID(int=0), "")


async def claim_next(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    organization_id: uuid.UUID,
    tags: list[str],
    held: Held | None = UNREAD,
) -> Claim | None:
    """Assign the best runnable job this agent's tags match: priority first, then oldest.
    Returns the job assigned to the agent (`assigned` is then its state).

    The final UPDATE is conditional on the job still being `scheduled`, so two agents (or two
    replicas) racing for one job cannot both win; the loser simply looks at the next one.
    `held`: the job the agent holds, when the caller read it in this transaction already.
    """
    if held is UNREAD:
        row = (await execute_core(session, _HELD, {"agent_id": agent_id})).first()
        held = Held(row.id, row.state) if row is not None else None
    if held is not None:
        return Claim(held.id) if held.state == JobState.ASSIGNED else None
    agent_tags = tags_to_map(tags)
    now = utcnow()
    # Usually the first candidate fits: read the queue a few at a time, not all of it.
    for skip, take in CLAIM_SLICES:
        found = await execute_core(
            session, _QUEUE, {"organization_id": organization_id, "skip": skip, "take": take}
        )
        candidates: list[Any] = list(found)
        for job_id, rules, group, limit, runnable_at in candidates:
            if not rules_match(rules or [], agent_tags):
                continue
            if group and limit and await _group_is_full(session, organization_id, group, limit):
                continue
            if await transitions.assign(session, job_id=job_id, agent_id=agent_id, now=now):
                return Claim(job_id, runnable_at, now)
        if len(candidates) < take:
            break
    return None


async def may_claim(
    session: AsyncSession, *, agent_id: uuid.UUID, organization_id: uuid.UUID, tags: list[str]
) -> bool:
    """Whether `claim_next` could find something for this agent: a job it holds, or one of the
    runnable jobs `claim_next` would look at matching its tags (concurrency groups not looked
    at). Reads only: a ping that finds nothing need not queue for SQLite's write lock."""
    if (await execute_core(session, _HELD, {"agent_id": agent_id})).first() is not None:
        return True
    agent_tags = tags_to_map(tags)
    for skip, take in CLAIM_SLICES:
        found = await execute_core(
            session, _QUEUE, {"organization_id": organization_id, "skip": skip, "take": take}
        )
        candidates: list[Any] = list(found)
        if any(rules_match(rules or [], agent_tags) for _, rules, _, _, _ in candidates):
            return True
        if len(candidates) < take:
            break
    return False


async def _group_is_full(
    session: AsyncSession, organization_id: uuid.UUID, group: str, limit: int
) -> bool:
    """Whether `limit` jobs of the concurrency group are already on agents.

    On PostgreSQL a transaction-scoped advisory lock per group serialises the check and the
    claim across replicas; SQLite already has one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"{organization_id}:{group}"},
        )
    running = await session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.organization_id == organization_id,
            Job.concurrency_group == group,
            Job.state.in_([state.value for state in ON_AGENT]),
        )
    )
    return (running or 0) >= limit
