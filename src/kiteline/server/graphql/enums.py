"""Buildkite's GraphQL enums, UPPERCASE as GraphQL spells them, each valued with the lowercase
word Kiteline stores (so `BuildStates(build.state)` and `BuildStates.PASSED.value` convert).

They live together because the domains share them (a pipeline's builds filter on BuildStates,
a build's jobs on JobStates) and argument types must exist before any domain type is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import strawberry


@strawberry.enum(name="BuildStates")
class BuildStates(Enum):
    BLOCKED = "blocked"
    CANCELED = "canceled"
    CANCELING = "canceling"
    CREATING = "creating"
    FAILED = "failed"
    FAILING = "failing"
    NOT_RUN = "not_run"
    PASSED = "passed"
    RUNNING = "running"
    SCHEDULED = "scheduled"
    SKIPPED = "skipped"


@strawberry.enum(name="BuildBlockedStates", description="The state a blocked build shows")
class BuildBlockedStates(Enum):
    FAILED = "failed"
    PASSED = "passed"
    RUNNING = "running"


@strawberry.enum(name="JobStates")
class JobStates(Enum):
    PENDING = "pending"
    WAITING = "waiting"
    WAITING_FAILED = "waiting_failed"
    BLOCKED = "blocked"
    BLOCKED_FAILED = "blocked_failed"
    UNBLOCKED = "unblocked"
    UNBLOCKED_FAILED = "unblocked_failed"
    LIMITING = "limiting"
    LIMITED = "limited"
    PLATFORM_LIMITING = "platform_limiting"
    PLATFORM_LIMITED = "platform_limited"
    SCHEDULED = "scheduled"
    RESERVED = "reserved"
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


@strawberry.enum(name="JobTypes")
class JobTypes(Enum):
    BLOCK = "manual"
    COMMAND = "script"
    TRIGGER = "trigger"
    WAIT = "waiter"


@strawberry.enum(name="JobRetryTypes")
class JobRetryTypes(Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@strawberry.enum(name="JobEventSignalReason")
class JobEventSignalReason(Enum):
    AGENT_INCOMPATIBLE = "agent_incompatible"
    AGENT_REFUSED = "agent_refused"
    AGENT_STOP = "agent_stop"
    CANCEL = "cancel"
    PROCESS_RUN_ERROR = "process_run_error"
    SIGNATURE_REJECTED = "signature_rejected"
    STACK_ERROR = "stack_error"


@strawberry.enum(name="AnnotationStyle")
class AnnotationStyle(Enum):
    DEFAULT = "default"
    ERROR = "error"
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"


@strawberry.enum(name="AnnotationScope")
class AnnotationScope(Enum):
    BUILD = "build"
    JOB = "job"


@strawberry.enum(name="AnnotationOrder")
class AnnotationOrder(Enum):
    PRIORITY_RECENTLY_CREATED = "priority_recently_created"
    RECENTLY_CREATED = "recently_created"


@strawberry.enum(name="ArtifactStates")
class ArtifactStates(Enum):
    NEW = "new"
    ERROR = "error"
    FINISHED = "finished"
    DELETED = "deleted"
    EXPIRED = "expired"


@strawberry.enum(name="PipelineVisibility")
class PipelineVisibility(Enum):
    PRIVATE = "private"
    PUBLIC = "public"


@strawberry.enum(name="PipelineOrders")
class PipelineOrders(Enum):
    NAME = "name"
    NAME_WITH_FAVORITES_FIRST = "name_with_favorites_first"
    RECENTLY_CREATED = "recently_created"
    RELEVANCE = "relevance"


@strawberry.enum(name="PipelineAccessLevels")
class PipelineAccessLevels(Enum):
    BUILD_AND_READ = "build_and_read"
    MANAGE_BUILD_AND_READ = "manage_build_and_read"
    READ_ONLY = "read_only"


def values(members: Sequence[Enum] | None) -> list[str]:
    """The stored words of a list of enum members (a filter argument), empty when absent."""
    return [str(member.value) for member in members or []]
