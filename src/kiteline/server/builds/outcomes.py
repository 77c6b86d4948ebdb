"""Pure rules over job rows: what counts as success for dependents, what fails a build,
which automatic retry rule and which soft-fail rule a finished job matches, and the state a
build's jobs make it (`derived_state`)."""

from __future__ import annotations

from typing import Any

from kiteline.server.builds.models import Build
from kiteline.server.builds.states import BuildState
from kiteline.server.jobs.definition import AutomaticRetry
from kiteline.server.jobs.service import Job
from kiteline.server.jobs.states import TERMINAL, UNSUCCESSFUL, JobState, JobType


def job_succeeded(job: Job) -> bool:
    """Whether dependents of this (terminal) job may run."""
    if job.state in (JobState.SKIPPED, JobState.BROKEN, JobState.UNBLOCKED):
        return True
    if job.state in UNSUCCESSFUL:
        return False
    return bool(job.passed or job.soft_failed)


def step_succeeded(jobs: list[Job]) -> bool | None:
    """None while any attempt of the step is unsettled; else whether it counts as a pass."""
    if any(job.state not in TERMINAL for job in jobs):
        return None
    return all(job_succeeded(job) for job in jobs)


def dependencies_verdict(job: Job, by_step: dict[str, list[Job]]) -> bool | None:
    """None while a dependency is unsettled; else whether the job may run."""
    ok = True
    for dependency in job.depends_on:
        succeeded = step_succeeded(by_step.get(str(dependency["step_id"]), []))
        if succeeded is None:
            return None
        if not succeeded and not dependency.get("allow_failure"):
            ok = False
    return ok or job.allow_dependency_failure or job.continue_on_failure


def hard_failed(job: Job) -> bool:
    """A failure that fails the build (soft failures and skipped dependents don't)."""
    if job.type == JobType.WAITER or job.state in (
        JobState.WAITING_FAILED,
        JobState.BLOCKED_FAILED,
    ):
        return False
    if job.state == JobState.FINISHED:
        return not job.passed and not job.soft_failed
    return job.state in (JobState.TIMED_OUT, JobState.EXPIRED)


def _status_matches(expected: Any, exit_status: int) -> bool:
    """`"*"` stands for any failing exit status 1-255; otherwise a status or list of them."""
    values = expected if isinstance(expected, list) else [expected]
    return any(
        (value == "*" and 1 <= exit_status <= 255) or value == exit_status for value in values
    )


def matching_retry_rule(job: Job) -> AutomaticRetry | None:
    """The first `retry.automatic` rule this finished attempt matches, if any.

    `"*"` matches exit statuses 1-255; a lost agent's `-1` must be named. Canceled jobs are
    never retried automatically; timed-out ones can be (their signal_reason is `cancel`).
    """
    if job.state not in (JobState.FINISHED, JobState.TIMED_OUT) or job.passed:
        return None
    exit_status = job.exit_status if job.exit_status is not None else -1
    for rule in job.definition.automatic_retry:
        if rule.signal and rule.signal != job.signal:
            continue
        if rule.signal_reason and rule.signal_reason != job.signal_reason:
            continue
        if _status_matches(rule.exit_status, exit_status):
            return rule
    return None


def soft_fail_matches(job: Job) -> bool:
    """Whether this failed job's exit status is one its step allows to fail softly."""
    rule = job.definition.soft_fail
    if rule is True:
        return True
    if not rule or job.exit_status is None:
        return False
    return _status_matches(rule, job.exit_status)


def derived_state(
    build: Build, jobs: list[Job], *, started: bool | None = None
) -> tuple[BuildState, str | None]:
    """The state a build's (current) jobs make it, and the `blocked_state` when it waits on a
    block step: a pure function of the build's state, its start and its jobs' states.
    `started`: whether the build or any of its jobs has started, when the caller knows."""
    previous = BuildState(build.state)
    # One pass: a build of 20,000 jobs is derived on the event loop, in one piece.
    blocked: list[Job] = []
    # Waiting jobs are not progress: when all that is left waits, it waits behind a block.
    active = failed = False
    if started is None:
        started = build.started_at is not None or any(j.started_at is not None for j in jobs)
    for each in jobs:
        state = each.state
        if state == JobState.BLOCKED:
            blocked.append(each)
        elif state not in TERMINAL and state != JobState.WAITING:
            active = True
        failed = failed or hard_failed(each)
    if previous == BuildState.CANCELING:
        return (BuildState.CANCELING if active or blocked else BuildState.CANCELED), None
    if not active and blocked:
        # Waiting for a person: the build keeps the state its block step asks for.
        blocked_state = blocked[0].definition.blocked_state or "passed"
        return (BuildState.FAILED if failed else BuildState(blocked_state)), blocked_state
    if not active:
        runnable = [each for each in jobs if each.type != JobType.WAITER]
        if all(each.state in (JobState.SKIPPED, JobState.BROKEN) for each in runnable):
            return BuildState.NOT_RUN, None
        if failed:
            return BuildState.FAILED, None
        if any(each.state == JobState.CANCELED for each in runnable):
            return BuildState.CANCELED, None  # a job was canceled on its own (its agent stopped)
        return BuildState.PASSED, None
    if failed:
        return BuildState.FAILING, None
    return (BuildState.RUNNING if started else BuildState.SCHEDULED), None
