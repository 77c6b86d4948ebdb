"""Lazy references between the domains' GraphQL types, which point at one another (a build has
a pipeline, a pipeline has builds): strawberry resolves them once every module is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from kiteline.server.agents.graphql import AgentNode
    from kiteline.server.annotations.graphql import AnnotationNode
    from kiteline.server.artifacts.graphql import ArtifactNode
    from kiteline.server.builds.graphql import BuildNode
    from kiteline.server.jobs.graphql import Job, JobConnection, JobTypeCommand, JobTypeTrigger
    from kiteline.server.organizations.graphql import OrganizationNode
    from kiteline.server.pipelines.graphql import PipelineNode
    from kiteline.server.schedules.graphql import PipelineScheduleNode
    from kiteline.server.users.graphql import BuildCreator, UserNode

AgentRef = Annotated["AgentNode", strawberry.lazy("kiteline.server.agents.graphql")]
AnnotationRef = Annotated["AnnotationNode", strawberry.lazy("kiteline.server.annotations.graphql")]
ArtifactRef = Annotated["ArtifactNode", strawberry.lazy("kiteline.server.artifacts.graphql")]
BuildRef = Annotated["BuildNode", strawberry.lazy("kiteline.server.builds.graphql")]
BuildCreatorRef = Annotated["BuildCreator", strawberry.lazy("kiteline.server.users.graphql")]
JobRef = Annotated["Job", strawberry.lazy("kiteline.server.jobs.graphql")]
JobConnectionRef = Annotated["JobConnection", strawberry.lazy("kiteline.server.jobs.graphql")]
JobTypeCommandRef = Annotated["JobTypeCommand", strawberry.lazy("kiteline.server.jobs.graphql")]
JobTypeTriggerRef = Annotated["JobTypeTrigger", strawberry.lazy("kiteline.server.jobs.graphql")]
OrganizationRef = Annotated[
    "OrganizationNode", strawberry.lazy("kiteline.server.organizations.graphql")
]
PipelineRef = Annotated["PipelineNode", strawberry.lazy("kiteline.server.pipelines.graphql")]
PipelineScheduleRef = Annotated[
    "PipelineScheduleNode", strawberry.lazy("kiteline.server.schedules.graphql")
]
UserRef = Annotated["UserNode", strawberry.lazy("kiteline.server.users.graphql")]
