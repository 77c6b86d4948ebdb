"""Job states as Buildkite names them, and which of them mean what."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    WAITING_FAILED = "waiting_failed"
    BLOCKED = "blocked"
    BLOCKED_FAILED = "blocked_failed"
    UNBLOCKED = "unblocked"
    UNBLOCKED_FAILED = "unblocked_failed"
    LIMITING = "limiting"
    LIMITED = "limited"
    SCHEDULED = "scheduled"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELING = "canceling"
    CANCELED = "canceled"
    TIMING_OUT = "timing_out"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    BROKEN = "broken"
    EXPIRED = "expired"


class JobType(StrEnum):
    SCRIPT = "script"
    WAITER = "waiter"
    MANUAL = "manual"
    TRIGGER = "trigger"


#: States a job never leaves (a retry creates a new job instead).
TERMINAL = frozenset(
    {
        JobState.FINISHED,
        JobState.CANCELED,
        JobState.TIMED_OUT,
        JobState.SKIPPED,
        JobState.BROKEN,
        JobState.EXPIRED,
        JobState.WAITING_FAILED,
        JobState.BLOCKED_FAILED,
        JobState.UNBLOCKED,
        JobState.UNBLOCKED_FAILED,
    }
)

#: Held by an agent: the agent must finish (or lose) it.
ON_AGENT = frozenset(
    {
        JobState.ASSIGNED,
        JobState.ACCEPTED,
        JobState.RUNNING,
        JobState.CANCELING,
        JobState.TIMING_OUT,
    }
)

#: A terminal state that is not a success for the steps that depend on it.
UNSUCCESSFUL = frozenset(
    {
        JobState.CANCELED,
        JobState.TIMED_OUT,
        JobState.EXPIRED,
        JobState.WAITING_FAILED,
        JobState.BLOCKED_FAILED,
        JobState.UNBLOCKED_FAILED,
    }
)
