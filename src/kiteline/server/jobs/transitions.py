"""Every change of a job's state, each in one function with the event it writes and the
wake-up it implies.

A transition sets the state (and the columns that go with it), writes its outbox event in the
caller's transaction, and, when it made a job runnable, wakes long-polling agent pings once
that transaction commits (`dispatch`): an idle agent takes the job at once instead of at its
next poll. Nothing else assigns a job's state; a change that moves a *build* goes through
builds/transitions.py, which calls these and then advances the build.

transition      from                        to                           event          wakes
schedule        waiting, pending (retry)    scheduled                    job.scheduled  yes
release         assigned                    scheduled                    -              yes
assign          scheduled                   assigned                     -              no
accept          assigned                    accepted                     -              no
start           accepted                    running                      job.started    no
start_lost      accepted (agent lost)       running                      -              no
finish          running, canceling,         finished, canceled,          job.finished   no
                timing_out                  timed_out
cancel          not on an agent             canceled                     job.finished   no
cancel          on an agent                 canceling                    -              no
time_out        running                     timing_out                   -              no
expire          scheduled                   expired                      job.finished   no
settle          waiting                     finished, waiting_failed,    -              no
                                            canceled, skipped
block           waiting                     blocked                      -              no
unblock         blocked                     unblocked                    job.activated  no
start_trigger   waiting                     running                      job.started    no
finish_trigger  running                     finished                     job.finished   no
wait_again      waiting_failed              waiting                      -              no
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.events import service as events
from kiteline.server.events.names import EventName
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.refs import JobRef, ref
from kiteline.server.jobs.states import JobState
from kiteline.server.kit.db import after_commit_once, execute_core, utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.kit.notify import dispatch
from kiteline.server.kit.secrets import generate_token, hash_token


def emit(session: AsyncSession, name: EventName, job: Job | JobRef) -> None:
    events.emit(
        session,
        name,
        organization_id=job.organization_id,
        subject_id=job.id,
        data={"job_id": str(job.id), "build_id": str(job.build_id), "state": job.state},
    )


def wake_agents(session: AsyncSession) -> None:
    """Wake held pings once the transaction commits: something became runnable (once however
    many jobs did: a large build schedules thousands)."""
    after_commit_once(session, dispatch.notify)


def schedule(session: AsyncSession, job: Job, now: datetime) -> None:
    """Runnable: agents whose tags match may take it."""
    job.state = JobState.SCHEDULED
    job.scheduled_at = job.scheduled_at or now
    job.runnable_at = now
    emit(session, EventName.JOB_SCHEDULED, job)
    wake_agents(session)


def release(session: AsyncSession, job: Job) -> None:
    """`assigned` → `scheduled`: an agent that never accepted it (stopping, or lost) hands
    it back, and an idle agent takes it at once, not at its next poll."""
    job.state = JobState.SCHEDULED
    job.agent_id = None
    job.assigned_at = None
    wake_agents(session)


_ASSIGN = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.state == JobState.SCHEDULED)
    .values(state=JobState.ASSIGNED, agent_id=bindparam("agent_id"), assigned_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def assign(
    session: AsyncSession, *, job_id: uuid.UUID, agent_id: uuid.UUID, now: datetime
) -> bool:
    """`scheduled` → `assigned`, conditional on the job still being `scheduled`: two agents
    (or two replicas) racing for one job cannot both win. Whether this one did."""
    claimed = await execute_core(
        session, _ASSIGN, {"job_id": job_id, "agent_id": agent_id, "now": now}
    )
    return bool(claimed.rowcount == 1)


# `assigned` → `accepted` (or `accepted` again), conditional on the job being this agent's and
# in one of those states; the job's columns come back with the change (built once).
_ACCEPT = (
    update(Job)
    .where(
        Job.id == bindparam("accepted_id"),
        Job.agent_id == bindparam("accepting_agent_id"),
        Job.state.in_([JobState.ASSIGNED, JobState.ACCEPTED]),
    )
    .values(
        state=JobState.ACCEPTED,
        accepted_at=case(
            (Job.state == JobState.ASSIGNED, bindparam("accepted_now", type_=Job.accepted_at.type)),
            else_=Job.accepted_at,
        ),
        token_hash=bindparam("new_token_hash"),
    )
    .returning(Job)
    .execution_options(synchronize_session=False)
)


async def accept(
    session: AsyncSession, *, job_id: uuid.UUID, agent_id: uuid.UUID
) -> tuple[Job, str]:
    """`assigned` → `accepted`; returns the job and its freshly issued job token.

    Its agent accepting it again is answered as the first time, with a new token that
    replaces the first: the first answer was lost (a server restart, a dropped connection),
    and without a token the agent could never start or finish the job. One conditional
    `UPDATE … RETURNING` (the row locked by the update itself); the job is read apart only
    to tell why it was refused.
    """
    token = generate_token("bkaj_")
    accepted = (
        await session.execute(
            _ACCEPT,
            {
                "accepted_id": job_id,
                "accepting_agent_id": agent_id,
                "accepted_now": utcnow(),
                "new_token_hash": hash_token(token),
            },
        )
    ).scalar_one_or_none()
    if accepted is not None:
        return accepted, token
    job = await session.get(Job, job_id)
    # A job not offered to this agent is none of its business, its state included (another
    # organization's job above all): as if it didn't exist.
    if job is None or job.agent_id != agent_id:
        raise NotFound.of("job")
    raise Unprocessable(f"Job can't be accepted: its state is {job.state}")


def reported_time(
    reported: datetime | None, *, now: datetime, not_before: datetime | None = None
) -> datetime:
    """A time an agent reports by its own clock (a job's start or finish), kept within what
    the server knows: never later than `now`, never before `not_before`; `now` if unreported."""
    if reported is None:
        return now
    bounded = min(reported, now)
    return max(bounded, not_before) if not_before is not None else bounded


_START = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.state == JobState.ACCEPTED)
    .values(state=JobState.RUNNING, started_at=bindparam("started_at"))
    .execution_options(synchronize_session=False)
)


async def start_accepted(session: AsyncSession, job: JobRef, started_at: datetime | None) -> JobRef:
    """`accepted` → `running` in one statement, the job not loaded (see `start`)."""
    at = reported_time(started_at, now=utcnow())
    started = await execute_core(session, _START, {"job_id": job.id, "started_at": at})
    if started.rowcount != 1:
        current = await ref(session, job.id)
        raise Unprocessable(f"Job can't be started: its state is {current.state}")
    running = job._replace(state=JobState.RUNNING)
    emit(session, EventName.JOB_STARTED, running)
    return running


def start(session: AsyncSession, job: Job, started_at: datetime | None) -> None:
    """`accepted` → `running`, at the time its agent reports."""
    if job.state != JobState.ACCEPTED:
        raise Unprocessable(f"Job can't be started: its state is {job.state}")
    job.state = JobState.RUNNING
    job.started_at = reported_time(started_at, now=utcnow())
    emit(session, EventName.JOB_STARTED, job)


def start_lost(job: Job) -> None:
    """`accepted` → `running` for a job whose agent was lost before it said it started: only
    so that it can finish as lost (no `job.started`: nothing ran)."""
    job.state = JobState.RUNNING
    job.started_at = utcnow()


def finish(
    session: AsyncSession,
    job: Job,
    *,
    exit_status: int,
    signal: str | None,
    signal_reason: str | None,
    finished_at: datetime | None,
    chunks_failed_count: int,
) -> None:
    """Record the outcome; a job being canceled or timed out lands in that state instead."""
    if job.state not in (JobState.RUNNING, JobState.CANCELING, JobState.TIMING_OUT):
        raise Unprocessable(f"Job can't be finished: its state is {job.state}")
    job.state = {
        JobState.CANCELING: JobState.CANCELED,
        JobState.TIMING_OUT: JobState.TIMED_OUT,
    }.get(JobState(job.state), JobState.FINISHED)
    job.exit_status = exit_status
    job.signal = signal
    job.signal_reason = signal_reason
    # The agent's finish time, not when the call got through (it may have waited out an
    # outage); bounded by the server's clock.
    job.finished_at = reported_time(finished_at, now=utcnow(), not_before=job.started_at)
    job.chunks_failed_count = chunks_failed_count
    job.passed = exit_status == 0 and job.state == JobState.FINISHED
    emit(session, EventName.JOB_FINISHED, job)


def repeats_finish(job: Job, exit_status: int) -> bool:
    """Whether a finish call repeats the one that finished the job: its agent retrying a call
    whose answer was lost (a server restart, a dropped connection). A job the server finished
    for a lost agent is not the agent's finish."""
    return (
        job.state in (JobState.FINISHED, JobState.CANCELED, JobState.TIMED_OUT)
        and job.exit_status == exit_status
        and job.signal_reason != "agent_lost"
    )


#: Not yet on an agent: canceling one finishes it at once.
_CANCELED_AT_ONCE = frozenset(
    {
        JobState.PENDING,
        JobState.WAITING,
        JobState.SCHEDULED,
        JobState.ASSIGNED,
        JobState.BLOCKED,
        JobState.LIMITING,
        JobState.LIMITED,
    }
)
#: On an agent: the agent stops it, and its finish lands it in `canceled`.
_WOUND_DOWN = frozenset({JobState.ACCEPTED, JobState.RUNNING, JobState.TIMING_OUT})


def cancel(session: AsyncSession, job: Job, now: datetime) -> bool:
    """Cancel one job if its state allows: on an agent it goes `canceling` (the agent stops
    it), else `canceled` and finished now. Whether it was canceled."""
    if job.state in _WOUND_DOWN:
        job.state = JobState.CANCELING
        job.canceled_at = now
        return True
    if job.state in _CANCELED_AT_ONCE:
        job.state = JobState.CANCELED
        job.canceled_at = now
        job.finished_at = now
        job.passed = False
        emit(session, EventName.JOB_FINISHED, job)
        return True
    return False


def time_out(job: Job) -> None:
    """`running` → `timing_out`: the agent sees it on its next state poll and stops the job.
    Nothing became runnable, so no ping is woken."""
    job.state = JobState.TIMING_OUT


def expire(session: AsyncSession, job: Job, now: datetime) -> None:
    """`scheduled` → `expired`: no agent took it in time."""
    job.state = JobState.EXPIRED
    job.expired_at = now
    job.finished_at = now
    job.passed = False
    emit(session, EventName.JOB_FINISHED, job)


def settle(job: Job, state: JobState, now: datetime, *, passed: bool) -> None:
    """A job that will not run ends: a wait step passed, a step whose dependencies failed
    (`waiting_failed`), one of a canceled build, one a newer build skips."""
    job.state = state
    job.passed = passed
    job.finished_at = now


def block(job: Job, now: datetime) -> None:
    """A block or input step reached: it waits for a person."""
    job.state = JobState.BLOCKED
    job.runnable_at = now


def unblock(
    session: AsyncSession, job: Job, *, unblocked_by_id: uuid.UUID | None, now: datetime
) -> None:
    """`blocked` → `unblocked`: a person let the build go on."""
    job.state = JobState.UNBLOCKED
    job.unblocked_at = now
    job.unblocked_by_id = unblocked_by_id
    job.finished_at = now
    job.passed = True
    emit(session, EventName.JOB_ACTIVATED, job)


def start_trigger(session: AsyncSession, job: Job, now: datetime) -> None:
    """A trigger step reached: it runs while it creates its build."""
    job.state = JobState.RUNNING
    job.started_at = now
    emit(session, EventName.JOB_STARTED, job)


def finish_trigger(
    session: AsyncSession, job: Job, *, passed: bool, soft_fail: bool, now: datetime
) -> None:
    """A trigger step's outcome: its build created (async) or finished (sync), or not made."""
    job.state = JobState.FINISHED
    job.passed = passed
    job.exit_status = 0 if passed else 1
    job.soft_failed = not passed and soft_fail
    job.finished_at = now
    emit(session, EventName.JOB_FINISHED, job)


def wait_again(job: Job) -> None:
    """`waiting_failed` → `waiting`: the step it gave up on is retried."""
    job.state = JobState.WAITING
    job.finished_at = None
    job.passed = None


#: The columns a retry copies from the attempt it retries.
RETRY_COPIED_FIELDS = (
    "organization_id",
    "pipeline_id",
    "build_id",
    "step_id",
    "step_key",
    "position",
    "type",
    "label",
    "command",
    "agent_query_rules",
    "env",
    "depends_on",
    "allow_dependency_failure",
    "continue_on_failure",
    "step",
    "artifact_paths",
    "timeout_in_minutes",
    "priority",
    "definition",
    "group_key",
    "concurrency",
    "concurrency_group",
)


def retry(session: AsyncSession, job: Job, *, retry_type: str, now: datetime) -> Job:
    """The next attempt of `job`'s step, scheduled; `job` is marked retried and points at it."""
    fields: dict[str, Any] = {name: getattr(job, name) for name in RETRY_COPIED_FIELDS}
    new = Job(
        id=uuid.uuid4(),
        **fields,
        state=JobState.PENDING,
        retries_count=job.retries_count + 1,
        retry_type=retry_type,
        retry_source_job_id=job.id,
    )
    session.add(new)
    job.retried = True
    job.retried_in_job_id = new.id
    schedule(session, new, now)
    return new
