"""Build states as Buildkite names them."""

from __future__ import annotations

from enum import StrEnum


class BuildState(StrEnum):
    CREATING = "creating"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PASSED = "passed"
    FAILING = "failing"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELING = "canceling"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    NOT_RUN = "not_run"


FINISHED = frozenset(
    {
        BuildState.PASSED,
        BuildState.FAILED,
        BuildState.CANCELED,
        BuildState.SKIPPED,
        BuildState.NOT_RUN,
    }
)

#: What the `finished` filter alias stands for in build lists.
FINISHED_FILTER = ("passed", "failed", "blocked", "canceled")
