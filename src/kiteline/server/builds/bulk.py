"""A new build of many jobs, settled in memory and written as rows (decision 0043).

`builds/transitions.schedule` writes a small build's jobs as ORM objects, then `advance`s it:
its waiting jobs whose dependencies are settled become runnable, and its state follows. For a
build of thousands of jobs that was seconds of ORM work on the event loop (an object per job,
flushed, then changed and flushed again, the state derived in a pass over the objects). Here
the same outcome is reached on plain data: `settle` (run in a thread) applies `advance`'s rules
to the planned jobs before anything is written, and makes each job's row with its settled
state; the rows are then inserted a slice at a time (`jobs/bulk.py`) and the events written a
slice at a time (`events.emit_each`), in the order `advance` emits them. What is written is
what the ORM path writes, row for row and event for event.

A build in which a trigger step would fire at once takes the ORM path: firing it creates
another build, which needs the session.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from kiteline.server.builds import outcomes
from kiteline.server.builds.models import Build
from kiteline.server.builds.states import BuildState
from kiteline.server.jobs.planned import PlannedJob
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.db import new_id

_PLANNED_FIELDS = tuple(item.name for item in dataclasses.fields(PlannedJob))

#: `outcomes.derived_state`: the state a build's jobs make it, and its `blocked_state`.
Derive = Callable[..., tuple[BuildState, str | None]]


class _Fresh:
    """A planned job being settled: what `outcomes` and `derived_state` read of a `Job`, and
    what `advance`'s job transitions change."""

    __slots__ = (
        "allow_dependency_failure",
        "continue_on_failure",
        "definition",
        "depends_on",
        "finished_at",
        "id",
        "passed",
        "retried",
        "runnable_at",
        "scheduled_at",
        "settled",
        "soft_failed",
        "started_at",
        "state",
        "type",
    )

    def __init__(self, planned: PlannedJob) -> None:
        self.id = new_id()
        self.type = planned.type
        self.state = planned.state
        self.depends_on = planned.depends_on
        self.allow_dependency_failure = planned.allow_dependency_failure
        self.continue_on_failure = planned.continue_on_failure
        self.definition = planned.definition
        self.passed: bool | None = None
        self.soft_failed = False
        self.started_at: datetime | None = None
        self.retried = False
        self.finished_at: datetime | None = None
        self.scheduled_at: datetime | None = None
        self.runnable_at: datetime | None = None
        self.settled = False


@dataclass
class Settled:
    """A new build's jobs as `advance` leaves them: their rows, in position order; the
    `job.scheduled` events' `(organization_id, job_id, data)`, in the order `advance` emits
    them; and the build's derived state and `blocked_state`."""

    rows: list[dict[str, Any]]
    scheduled: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]]
    state: BuildState
    blocked_state: str | None


def settle(
    build: Build, planned: list[PlannedJob], now: datetime, derive: Derive
) -> Settled | None:
    """`advance` of a build just written with `planned` as its jobs (none retried, none
    started), on plain data; None when a trigger step would fire (the ORM path does that) or
    the build would be failing (nothing new can fail it). Pure: run it in a thread."""
    fresh = [_Fresh(item) for item in planned]
    jobs = cast(list[Job], fresh)  # read as jobs by outcomes and derive, duck-typed
    by_step: dict[str, list[Job]] = {}
    for item, job in zip(planned, jobs, strict=True):
        by_step.setdefault(str(item.step_id), []).append(job)
    scheduled: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]] = []
    job_ids = [str(each.id) for each in fresh]
    build_id = str(build.id)
    changed = True
    while changed:  # as `advance`: until a pass settles nothing more
        changed = False
        for index, each in enumerate(fresh):
            if each.state != JobState.WAITING:
                continue
            verdict = outcomes.dependencies_verdict(jobs[index], by_step)
            if verdict is None:
                continue
            changed = True
            each.settled = True
            if not verdict:
                each.state, each.passed, each.finished_at = JobState.WAITING_FAILED, False, now
            elif each.type == JobType.WAITER:
                each.state, each.passed, each.finished_at = JobState.FINISHED, True, now
            elif each.type == JobType.MANUAL:
                each.state, each.runnable_at = JobState.BLOCKED, now
            elif each.type == JobType.TRIGGER:
                return None
            else:
                each.state, each.scheduled_at, each.runnable_at = JobState.SCHEDULED, now, now
                data = {"job_id": job_ids[index], "build_id": build_id, "state": each.state}
                scheduled.append((build.organization_id, each.id, data))
    state, blocked_state = derive(build, jobs, started=False)
    if state == BuildState.FAILING:
        return None
    common = {
        "organization_id": build.organization_id,
        "pipeline_id": build.pipeline_id,
        "build_id": build.id,
        "created_at": build.created_at,
    }
    rows = []
    for position, (item, each) in enumerate(zip(planned, fresh, strict=True)):
        row = {name: getattr(item, name) for name in _PLANNED_FIELDS}
        row.update(common)
        row["id"] = each.id
        row["position"] = position
        row["state"] = each.state
        row["passed"] = each.passed
        row["finished_at"] = each.finished_at
        row["scheduled_at"] = each.scheduled_at
        row["runnable_at"] = each.runnable_at
        # The ORM path inserts every job, then updates the settled ones (a revision each).
        row["revision"] = 1 if each.settled else 0
        rows.append(row)
    return Settled(rows, scheduled, state, blocked_state)
