"""The schema: every domain's types, queries and mutations, `node(id)`, and how a checked
document is run: `schema_for(execution)`, one schema per execution mode (`fast`, the shortcuts
of `graphql.fast`; `stock`, strawberry and graphql-core as they come)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Literal

import strawberry
from graphql import GraphQLError, GraphQLSchema, NoUnusedVariablesRule, specified_rules
from strawberry.extensions import SchemaExtension
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from kiteline.server.agents.graphql import AgentMutation, AgentQuery, lookup_agent
from kiteline.server.annotations.graphql import AnnotationMutation, lookup_annotation
from kiteline.server.artifacts.graphql import ArtifactQuery, lookup_artifact
from kiteline.server.builds.graphql import SOURCE_TYPES, BuildMutation, BuildQuery, lookup_build
from kiteline.server.graphql import fast, registry
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.errors import log_unexpected
from kiteline.server.graphql.ids import decode_global_id
from kiteline.server.graphql.node import Node, NodeLookup
from kiteline.server.graphql.scalars import SCALARS
from kiteline.server.jobs.graphql import JobMutation, JobQuery, lookup_job
from kiteline.server.organizations.graphql import OrganizationQuery, lookup_organization
from kiteline.server.pipelines.graphql import PipelineMutation, PipelineQuery, lookup_pipeline
from kiteline.server.schedules.graphql import ScheduleMutation, ScheduleQuery, lookup_schedule
from kiteline.server.users.graphql import UserQuery, lookup_user, lookup_viewer

registry.check_filled()  # every domain module imported above has provided its slots

#: Every rule of the GraphQL spec but one: the seed's own "SearchBuilds" example declares an
#: `$org` it never uses, and the seed's examples must run as written.
VALIDATION_RULES = tuple(rule for rule in specified_rules if rule is not NoUnusedVariablesRule)

#: The type named in a global id → how to find that object. Jobs answer to `Job---` (REST's
#: graphql_id) as well as to their own type's name.
NODE_LOOKUPS: dict[str, NodeLookup] = {
    "Organization": lookup_organization,
    "Pipeline": lookup_pipeline,
    "Build": lookup_build,
    "Job": lookup_job,
    "JobTypeCommand": lookup_job,
    "JobTypeWait": lookup_job,
    "JobTypeBlock": lookup_job,
    "JobTypeTrigger": lookup_job,
    "Agent": lookup_agent,
    "Annotation": lookup_annotation,
    "Artifact": lookup_artifact,
    "User": lookup_user,
    "Viewer": lookup_viewer,
    "PipelineSchedule": lookup_schedule,
}


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global ID; null when missing or not yours")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        decoded = decode_global_id(id)
        lookup = NODE_LOOKUPS.get(decoded.type_name) if decoded is not None else None
        if decoded is None or lookup is None:
            return None
        return await lookup(info.context, decoded)


Query = merge_types(
    "Query",
    (
        UserQuery,
        OrganizationQuery,
        PipelineQuery,
        ScheduleQuery,
        BuildQuery,
        JobQuery,
        AgentQuery,
        ArtifactQuery,
        NodeQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        BuildMutation,
        JobMutation,
        PipelineMutation,
        ScheduleMutation,
        AgentMutation,
        AnnotationMutation,
    ),
)


class UseCheckedDocument(SchemaExtension):
    """Runs the document the endpoint already parsed and validated, instead of parsing and
    validating the query text again."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        assert isinstance(context, GraphQLContext)
        self.execution_context.graphql_document = context.document
        self.execution_context.validation_rules = ()
        yield


#: How graphql-core runs a document (the `graphql_execution` setting).
Execution = Literal["fast", "stock"]


class KitelineSchema(strawberry.Schema):
    @property
    def graphql_core(self) -> GraphQLSchema:
        """The graphql-core schema strawberry built (for the checks before a query runs, its
        cost after, and introspection). Strawberry keeps it as `_schema`: read here only."""
        return self._schema

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Refusals and malformed queries are the client's to read, not the server's to log.
        log_unexpected(errors)


@cache
def schema_for(execution: Execution) -> KitelineSchema:
    """The schema, built once per process for each execution mode asked for."""
    built = KitelineSchema(
        query=Query,
        mutation=Mutation,
        types=SOURCE_TYPES,
        scalar_overrides=SCALARS,
        extensions=[UseCheckedDocument],
        execution_context_class=fast.ExecutionContext if execution == "fast" else None,
    )
    if execution == "fast":
        fast.install(built)
    return built
