"""What one domain's GraphQL module needs from another's at run time, without importing it.

The domains' types point at one another (a build has a pipeline, a pipeline has builds):
annotations name the other types lazily (`refs`), and resolvers reach the other domains'
node classes (and a build's jobs, a connection of the jobs module's own type) through the
slots here; a parent pages any other children through their domain's service itself. Each
slot is filled by the module that owns it, when that module is imported (`schema` imports
them all before anything runs); so the 8 domain modules depend on `graphql/` and their own
domain only (an import-linter contract keeps it so), and the signatures below are what mypy
checks both sides against.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar

if TYPE_CHECKING:  # types only (rows named through their services): at run time, the slots
    from kiteline.server.agents.graphql import AgentNode
    from kiteline.server.agents.service import Agent
    from kiteline.server.annotations.graphql import AnnotationNode
    from kiteline.server.annotations.service import Annotation
    from kiteline.server.artifacts.graphql import ArtifactNode
    from kiteline.server.artifacts.service import Artifact
    from kiteline.server.builds.graphql import BuildNode
    from kiteline.server.builds.repository import Build
    from kiteline.server.graphql.context import Info
    from kiteline.server.jobs.graphql import (
        JobConnection,
        JobTypeBlock,
        JobTypeCommand,
        JobTypeTrigger,
        JobTypeWait,
    )
    from kiteline.server.jobs.service import Job, JobFilter
    from kiteline.server.kit.keyset import Window
    from kiteline.server.organizations.graphql import OrganizationNode
    from kiteline.server.organizations.service import Organization
    from kiteline.server.pipelines.graphql import PipelineNode
    from kiteline.server.pipelines.service import Pipeline
    from kiteline.server.schedules.graphql import PipelineScheduleNode
    from kiteline.server.schedules.service import PipelineSchedule
    from kiteline.server.users.graphql import UnregisteredUser, UserNode
    from kiteline.server.users.service import User

P = ParamSpec("P")
R = TypeVar("R")


class Slot(Generic[P, R]):
    """A function with the signature of its declaration, provided by one module."""

    def __init__(self, declaration: Callable[P, R]) -> None:
        self.name = declaration.__name__
        self.__doc__ = declaration.__doc__
        self._provided: Callable[P, R] | None = None

    def provide(self, function: Callable[P, R]) -> Callable[P, R]:
        """Decorator: `function` is what this slot calls from now on."""
        if self._provided is not None:
            raise RuntimeError(f"GraphQL slot {self.name} is provided twice")
        self._provided = function
        return function

    @property
    def provided(self) -> bool:
        return self._provided is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        provided = self._provided
        if provided is None:
            raise RuntimeError(f"GraphQL slot {self.name} is empty: its module is not imported")
        return provided(*args, **kwargs)


def slot(declaration: Callable[P, R]) -> Slot[P, R]:
    """Declares a slot by a function's signature (its body is never run)."""
    return Slot(declaration)


# --- nodes ----------------------------------------------------------------------------------


@slot
def organization_node(row: Organization, /) -> OrganizationNode:
    raise NotImplementedError


@slot
def pipeline_node(row: Pipeline, /) -> PipelineNode:
    raise NotImplementedError


@slot
def build_node(row: Build, /) -> BuildNode:
    raise NotImplementedError


@slot
def job_node(row: Job, /) -> JobTypeCommand | JobTypeWait | JobTypeBlock | JobTypeTrigger:
    """The node of the job's own type."""
    raise NotImplementedError


@slot
def command_job_node(row: Job, /) -> JobTypeCommand:
    raise NotImplementedError


@slot
def trigger_job_node(row: Job, /) -> JobTypeTrigger:
    raise NotImplementedError


@slot
def agent_node(row: Agent, /) -> AgentNode:
    raise NotImplementedError


@slot
def annotation_node(row: Annotation, /) -> AnnotationNode:
    raise NotImplementedError


@slot
def artifact_node(row: Artifact, /) -> ArtifactNode:
    raise NotImplementedError


@slot
def schedule_node(row: PipelineSchedule, /) -> PipelineScheduleNode:
    raise NotImplementedError


@slot
def user_node(row: User, /) -> UserNode:
    raise NotImplementedError


@slot
def unregistered_user(name: str | None, email: str | None, /) -> UnregisteredUser:
    """A build's author without an account."""
    raise NotImplementedError


# --- connections a parent cannot page through the child's service alone -------------------
# (Any other parent pages its children through their domain's service, in its own field, and
# wraps them with the node slots above: the field's arguments are written there only.)


@slot
async def jobs_of(
    info: Info, build_id: uuid.UUID, *, window: Window, where: JobFilter
) -> JobConnection:
    raise NotImplementedError


SLOTS = (
    organization_node,
    pipeline_node,
    build_node,
    job_node,
    command_job_node,
    trigger_job_node,
    agent_node,
    annotation_node,
    artifact_node,
    schedule_node,
    user_node,
    unregistered_user,
    jobs_of,
)


def check_filled() -> None:
    """Every slot provided (the schema calls this once every domain module is imported)."""
    empty = [each.name for each in SLOTS if not each.provided]
    if empty:
        raise RuntimeError(f"GraphQL slots not provided: {', '.join(empty)}")
