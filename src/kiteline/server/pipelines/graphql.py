"""GraphQL's Pipeline: its fields and builds, the `pipeline` query, and pipelineCreate,
pipelineUpdate and pipelineDelete (through the same service functions as REST)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from kiteline.server.builds import repository as build_repository
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import (
    build_filter,
    caller_organization,
    organization_of,
    pipeline_for_mutation,
)
from kiteline.server.graphql.connections import (
    Connection,
    Edge,
    listed,
    paged,
    row_edge,
    window_from,
)
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import (
    BuildStates,
    PipelineAccessLevels,
    PipelineVisibility,
)
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationInput, MutationPayload, NodeMutationInput
from kiteline.server.graphql.node import Node, RowUUID, found, id_of
from kiteline.server.graphql.refs import BuildRef, OrganizationRef, PipelineScheduleRef, UserRef
from kiteline.server.graphql.scalars import JSONValue, YAMLText
from kiteline.server.kit.ids import graphql_id, parse_uuid
from kiteline.server.pipelines import providers, service
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.schedules import service as schedule_service
from kiteline.server.users import service as users

_PROVIDER_NAMES = {
    "github": "GitHub",
    "gitlab": "GitLab",
    "bitbucket": "Bitbucket",
    "gitea": "Gitea",
}


@strawberry.type(name="RepositoryProvider")
class RepositoryProvider:
    """The code host of a pipeline's repository, its webhook URL (to callers who may edit the
    pipeline) and its settings (Kiteline: REST's `provider.settings`)."""

    name: str
    url: str | None
    webhook_url: str | None
    settings: JSONValue


@strawberry.type(name="Repository")
class Repository:
    url: str
    provider: RepositoryProvider


@strawberry.type(name="PipelineSteps")
class PipelineSteps:
    yaml: YAMLText | None


@strawberry.type(name="PipelineTag")
class PipelineTag:
    label: str


@strawberry.type(name="Pipeline")
class PipelineNode(Node, RowUUID):
    row: strawberry.Private[Pipeline]

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The pipeline's page on this server")
    def url(self, info: Info) -> str:
        organization = caller_organization(info.context, id_=self.row.organization_id)
        slug = organization.slug if organization else ""
        return info.context.urls.web(f"{slug}/{self.row.slug}")

    @strawberry.field(
        name="badgeURL",
        description="The pipeline's build status badge (SVG; `?branch=` scopes it to a branch)",
    )
    def badge_url(self, info: Info) -> str:
        return info.context.urls.badge(self.row.badge_key)

    @strawberry.field
    def description(self) -> str | None:
        return self.row.description

    @strawberry.field
    def default_branch(self) -> str | None:
        return self.row.default_branch

    @strawberry.field
    def branch_configuration(self) -> str | None:
        return self.row.branch_configuration

    @strawberry.field
    def repository(self, info: Info) -> Repository | None:
        if not self.row.repository:
            return None
        provider = providers.provider_id(self.row.repository, self.row.settings)
        host, path = providers.repository_host_and_path(self.row.repository)
        may_edit = "write_pipelines" in info.context.principal.token.scopes
        return Repository(
            url=self.row.repository,
            provider=RepositoryProvider(
                name=_PROVIDER_NAMES.get(provider, "Git"),
                url=f"https://{host}/{path}" if host and path else None,
                webhook_url=info.context.urls.web(f"deliver/{self.row.webhook_token}")
                if may_edit and self.row.webhook_token
                else None,
                settings=JSONValue(
                    providers.provider_settings(self.row.settings, self.row.repository)
                ),
            ),
        )

    @strawberry.field(description="Builds on a cron timetable")
    async def schedules(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Connection[PipelineScheduleRef]:
        return await listed(
            info,
            "pipeline_schedules",
            self.row.id,
            fetch=schedule_service.for_pipelines,
            window=window_from(first, last, after, before),
            wrap=registry.schedule_node,
        )

    @strawberry.field
    def steps(self) -> PipelineSteps | None:
        return PipelineSteps(yaml=YAMLText(self.row.configuration))

    @strawberry.field
    def visibility(self) -> PipelineVisibility:
        public = self.row.visibility == PipelineVisibility.PUBLIC.value
        return PipelineVisibility.PUBLIC if public else PipelineVisibility.PRIVATE

    @strawberry.field
    def archived(self) -> bool:
        return self.row.archived_at is not None

    @strawberry.field
    def archived_at(self) -> datetime | None:
        return self.row.archived_at

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.row.created_at

    @strawberry.field
    async def created_by(self, info: Info) -> UserRef | None:
        user = await info.context.load(users.get_many, self.row.created_by_id)
        return registry.user_node(user) if user is not None else None

    @strawberry.field
    def organization(self, info: Info) -> OrganizationRef:
        return registry.organization_node(organization_of(info.context, self.row.organization_id))

    @strawberry.field
    def skip_intermediate_builds(self) -> bool:
        return bool(self.row.settings.get("skip_queued_branch_builds"))

    @strawberry.field
    def skip_intermediate_builds_branch_filter(self) -> str | None:
        return self.row.settings.get("skip_queued_branch_builds_filter")

    @strawberry.field
    def cancel_intermediate_builds(self) -> bool:
        return bool(self.row.settings.get("cancel_running_branch_builds"))

    @strawberry.field
    def cancel_intermediate_builds_branch_filter(self) -> str | None:
        return self.row.settings.get("cancel_running_branch_builds_filter")

    @strawberry.field
    def allow_rebuilds(self) -> bool:
        return self.row.settings.get("allow_rebuilds", True) is not False

    @strawberry.field
    def next_build_number(self) -> int:
        return self.row.last_build_number + 1

    @strawberry.field
    def tags(self) -> list[PipelineTag]:
        return [PipelineTag(label=str(label)) for label in self.row.settings.get("tags") or []]

    @strawberry.field(description='Newest first; `branch: "%default"` is the default branch')
    async def builds(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        state: list[BuildStates] | None = None,
        branch: list[str] | None = None,
        commit: list[str] | None = None,
        meta_data: list[str] | None = None,
        created_at_from: datetime | None = None,
        created_at_to: datetime | None = None,
    ) -> Connection[BuildRef]:
        where = build_filter(
            state=state,
            branch=branch,
            commit=commit,
            meta_data=meta_data,
            created_from=created_at_from,
            created_to=created_at_to,
            default_branch=self.row.default_branch,
        )
        window = window_from(first, last, after, before)
        return await paged(
            info,
            ("pipeline_builds", repr(where), window),
            self.row.id,
            pages=lambda session, ids: build_repository.pages_by(
                session, "pipeline", ids, where=where, window=window
            ),
            counts=lambda session, ids: build_repository.counts_by(
                session, "pipeline", ids, where=where
            ),
            wrap=registry.build_node,
        )


@registry.pipeline_node.provide
def _node(row: Pipeline) -> PipelineNode:
    return PipelineNode(row=row)


async def reveal_pipeline(ctx: GraphQLContext, pipeline: Pipeline | None) -> PipelineNode | None:
    shown = await ctx.reveal(pipeline)
    return PipelineNode(row=shown) if shown is not None else None


async def _by_slug(ctx: GraphQLContext, slug: str) -> Pipeline | None:
    org_slug, _, pipeline_slug = slug.partition("/")
    organization = caller_organization(ctx, slug=org_slug)
    if organization is None or not pipeline_slug:
        return None
    return await ctx.read(
        lambda session: service.find_signed(
            session, organization_id=organization.id, slug=pipeline_slug
        ),
        signed=True,
    )


@strawberry.type
class PipelineQuery:
    @strawberry.field(description='A pipeline by slug ("org/pipeline") or UUID')
    async def pipeline(
        self, info: Info, slug: strawberry.ID | None = None, uuid: strawberry.ID | None = None
    ) -> PipelineNode | None:
        ctx = info.context
        if slug is not None:
            return await reveal_pipeline(ctx, await _by_slug(ctx, slug))
        parsed = parse_uuid(uuid) if uuid else None
        return await reveal_pipeline(ctx, await ctx.load(service.get_many, parsed))


async def lookup_pipeline(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    return await reveal_pipeline(ctx, await ctx.load(service.get_many, global_id.uuid))


# --- mutations ------------------------------------------------------------------------------


@strawberry.input(name="PipelineRepositoryInput")
class PipelineRepositoryInput:
    url: str


@strawberry.input(name="PipelineStepsInput")
class PipelineStepsInput:
    yaml: str


@strawberry.input(name="PipelineTagInput")
class PipelineTagInput:
    label: str


@strawberry.input(name="PipelineTeamAssignmentInput")
class PipelineTeamAssignmentInput:
    id: strawberry.ID
    access_level: PipelineAccessLevels | None = PipelineAccessLevels.MANAGE_BUILD_AND_READ


@strawberry.input(name="PipelineSettingsInput")
class PipelineSettingsInput(MutationInput):
    """What pipelineCreate and pipelineUpdate both set (never itself in the schema)."""

    steps: PipelineStepsInput | None = None
    description: str | None = None
    default_branch: str | None = None
    branch_configuration: str | None = None
    skip_intermediate_builds: bool | None = None
    skip_intermediate_builds_branch_filter: str | None = None
    cancel_intermediate_builds: bool | None = None
    cancel_intermediate_builds_branch_filter: str | None = None
    allow_rebuilds: bool | None = None
    visibility: PipelineVisibility | None = None
    tags: list[PipelineTagInput] | None = None

    def changes(self) -> dict[str, Any]:
        """The given settings under the names REST and the service use."""
        given: dict[str, Any] = {
            "configuration": self.steps.yaml if self.steps is not None else None,
            "description": self.description,
            "default_branch": self.default_branch,
            "branch_configuration": self.branch_configuration,
            "skip_queued_branch_builds": self.skip_intermediate_builds,
            "skip_queued_branch_builds_filter": self.skip_intermediate_builds_branch_filter,
            "cancel_running_branch_builds": self.cancel_intermediate_builds,
            "cancel_running_branch_builds_filter": self.cancel_intermediate_builds_branch_filter,
            "allow_rebuilds": self.allow_rebuilds,
            "visibility": self.visibility.value if self.visibility is not None else None,
            "tags": [tag.label for tag in self.tags] if self.tags is not None else None,
        }
        return {key: value for key, value in given.items() if value is not None}


@strawberry.input(name="PipelineCreateInput")
class PipelineCreateInput(PipelineSettingsInput):
    organization_id: strawberry.ID
    name: str
    repository: PipelineRepositoryInput
    teams: list[PipelineTeamAssignmentInput] | None = strawberry.field(
        default=None, description="Accepted and ignored: Kiteline has no teams"
    )


@strawberry.input(name="PipelineUpdateInput")
class PipelineUpdateInput(PipelineSettingsInput):
    id: strawberry.ID
    name: str | None = None
    repository: PipelineRepositoryInput | None = None
    archived: bool | None = None


@strawberry.input(name="PipelineDeleteInput")
class PipelineDeleteInput(NodeMutationInput):
    pass


@strawberry.type(name="PipelineCreatePayload")
class PipelineCreatePayload(MutationPayload):
    pipeline: PipelineNode
    pipeline_edge: Edge[PipelineNode]
    organization: OrganizationRef


@strawberry.type(name="PipelineUpdatePayload")
class PipelineUpdatePayload(MutationPayload):
    pipeline: PipelineNode


@strawberry.type(name="PipelineDeletePayload")
class PipelineDeletePayload(MutationPayload):
    deleted_pipeline_id: strawberry.ID = strawberry.field(name="deletedPipelineID")
    organization: OrganizationRef


@strawberry.type
class PipelineMutation:
    @strawberry.mutation
    async def pipeline_create(
        self, info: Info, input: PipelineCreateInput
    ) -> PipelineCreatePayload | None:
        ctx = info.context
        organization_id = id_of(input.organization_id, {"Organization"}, "organization")
        organization = found(caller_organization(ctx, id_=organization_id), "organization")
        await ctx.budget.enter_organization(organization.id)
        changes = input.changes()
        settings = {key: changes[key] for key in service.UPDATABLE_SETTINGS if key in changes}
        pipeline = await ctx.write(
            lambda session: service.create(
                session,
                organization_id=organization.id,
                name=input.name,
                configuration=changes.get("configuration", ""),
                created_by_id=ctx.principal.user_id,
                repository=input.repository.url,
                description=changes.get("description"),
                default_branch=changes.get("default_branch"),
                branch_configuration=changes.get("branch_configuration"),
                visibility=changes.get("visibility", "private"),
                settings=settings,
            )
        )
        node = PipelineNode(row=pipeline)
        return PipelineCreatePayload(
            client_mutation_id=input.client_mutation_id,
            pipeline=node,
            pipeline_edge=row_edge(pipeline, node),
            organization=registry.organization_node(organization),
        )

    @strawberry.mutation
    async def pipeline_update(
        self, info: Info, input: PipelineUpdateInput
    ) -> PipelineUpdatePayload | None:
        ctx = info.context
        pipeline = await pipeline_for_mutation(ctx, input.id)
        changes = input.changes()
        if input.name is not None:
            changes["name"] = input.name
        if input.repository is not None:
            changes["repository"] = input.repository.url

        async def update(session: Any) -> Pipeline:
            await service.update(session, pipeline, changes)
            if input.archived is not None and input.archived != (pipeline.archived_at is not None):
                (service.archive if input.archived else service.unarchive)(pipeline)
            await session.flush()
            return pipeline

        await ctx.write(update)
        return PipelineUpdatePayload(
            client_mutation_id=input.client_mutation_id, pipeline=PipelineNode(row=pipeline)
        )

    @strawberry.mutation
    async def pipeline_delete(
        self, info: Info, input: PipelineDeleteInput
    ) -> PipelineDeletePayload | None:
        ctx = info.context
        pipeline = await pipeline_for_mutation(ctx, input.id)
        organization = organization_of(ctx, pipeline.organization_id)
        await ctx.write(lambda session: service.delete(session, pipeline))
        return PipelineDeletePayload(
            client_mutation_id=input.client_mutation_id,
            deleted_pipeline_id=strawberry.ID(graphql_id("Pipeline", pipeline.id)),
            organization=registry.organization_node(organization),
        )
