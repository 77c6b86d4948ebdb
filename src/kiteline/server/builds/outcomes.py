"""Pure rules over job rows: what counts as success for dependents, what fails a build,
which automatic retry rule and which soft-fail rule a finished job matches."""

from __future__ import annotations

from typing import Any

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
