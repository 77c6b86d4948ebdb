"""GraphQL's Build: its fields, jobs and annotations, the `build` query, and buildCreate,
buildCancel and buildRebuild (through the same service functions as REST)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from kiteline.server.annotations import service as annotation_service
from kiteline.server.builds import repository, service, transitions
from kiteline.server.builds.models import Build
from kiteline.server.builds.states import BuildState
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import (
    build_for_mutation,
    build_web_url,
    caller_organization,
    organization_of,
    pipeline_for_mutation,
)
from kiteline.server.graphql.connections import (
    MAX_META_DATA_PAGE_SIZE,
    Connection,
    listed,
    paged,
    window_from,
)
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import (
    AnnotationOrder,
    AnnotationScope,
    AnnotationStyle,
    BuildBlockedStates,
    BuildStates,
    JobStates,
    JobTypes,
    values,
)
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationInput, MutationPayload, NodeMutationInput
from kiteline.server.graphql.node import Node, RowUUID, found
from kiteline.server.graphql.refs import (
    AnnotationRef,
    BuildCreatorRef,
    JobConnectionRef,
    JobTypeTriggerRef,
    OrganizationRef,
    PipelineRef,
)
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.errors import NotFound
from kiteline.server.kit.ids import INT32_MAX, parse_int, parse_uuid
from kiteline.server.pipelines import service as pipelines
from kiteline.server.users import service as users


@strawberry.interface(name="BuildSource", description="What created a build")
class BuildSource:
    name: str


def _source_type(name: str) -> type[BuildSource]:
    """One of Buildkite's BuildSource types, which differ only in their names."""
    return strawberry.type(type(name, (BuildSource,), {"__module__": __name__}), name=name)


#: How a build was created (as stored) → its BuildSource type's name and its `name`.
_SOURCE_NAMES = {
    "api": ("BuildSourceAPI", "API"),
    "ui": ("BuildSourceFrontend", "Frontend"),
    "webhook": ("BuildSourceWebhook", "Webhook"),
    "schedule": ("BuildSourceSchedule", "Schedule"),
    "trigger_job": ("BuildSourceTriggerJob", "Trigger job"),
}
_SOURCES: dict[str, BuildSource] = {
    source: _source_type(type_name)(name=name)
    for source, (type_name, name) in _SOURCE_NAMES.items()
}
#: For the schema: nothing names these types but a build's `source`.
SOURCE_TYPES = tuple(type(source) for source in _SOURCES.values())


@strawberry.type(name="BuildMetaData")
class BuildMetaData:
    key: str
    value: str


@strawberry.type(name="PullRequest")
class PullRequest:
    id: str


@strawberry.input(name="JobStepSearch")
class JobStepSearch:
    key: list[str] | None = None


@strawberry.type(name="Build")
class BuildNode(Node, RowUUID):
    row: strawberry.Private[Build]

    @strawberry.field
    def number(self) -> int:
        return self.row.number

    @strawberry.field
    def state(self) -> BuildStates:
        return BuildStates(self.row.state)

    @strawberry.field(description="The state the build shows while it waits on a block step")
    def blocked_state(self) -> BuildBlockedStates | None:
        if not self.row.blocked or self.row.blocked_state is None:
            return None
        return BuildBlockedStates(self.row.blocked_state)

    @strawberry.field
    def branch(self) -> str:
        return self.row.branch

    @strawberry.field
    def commit(self) -> str:
        return self.row.commit

    @strawberry.field
    def message(self) -> str | None:
        return self.row.message

    @strawberry.field(description="The build's page on this server")
    async def url(self, info: Info) -> str:
        return await build_web_url(info.context, self.row)

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.row.created_at

    @strawberry.field
    def scheduled_at(self) -> datetime | None:
        return self.row.scheduled_at

    @strawberry.field
    def started_at(self) -> datetime | None:
        return self.row.started_at

    @strawberry.field
    def finished_at(self) -> datetime | None:
        return self.row.finished_at

    @strawberry.field
    def failing_at(self) -> datetime | None:
        return self.row.failing_at

    @strawberry.field
    def canceled_at(self) -> datetime | None:
        return self.row.finished_at if self.row.state == BuildState.CANCELED else None

    @strawberry.field
    def cancel_reason(self) -> str | None:
        return self.row.cancel_reason

    @strawberry.field(description="The user who created the build, or its author")
    async def created_by(self, info: Info) -> BuildCreatorRef | None:
        creator = await info.context.load(users.get_many, self.row.creator_id)
        if creator is not None:
            return registry.user_node(creator)
        author = self.row.author or {}
        if not author.get("name") and not author.get("email"):
            return None
        return registry.unregistered_user(author.get("name"), author.get("email"))

    @strawberry.field
    def source(self) -> BuildSource:
        return _SOURCES.get(self.row.source, _SOURCES["api"])

    @strawberry.field(description="The build's own environment, as KEY=value")
    def env(self) -> list[str] | None:
        return [f"{key}={value}" for key, value in (self.row.env or {}).items()]

    @strawberry.field
    async def meta_data(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Connection[BuildMetaData]:
        async def fetch(session: Any, build_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
            found = await repository.meta_data_for(session, build_ids)
            return {build_id: sorted(items.items()) for build_id, items in found.items()}

        return await listed(
            info,
            "build_meta_data",
            self.row.id,
            fetch=fetch,
            window=window_from(
                first, last, after, before, max_size=MAX_META_DATA_PAGE_SIZE, key=str
            ),
            wrap=lambda item: BuildMetaData(key=item[0], value=item[1]),
            item_key=lambda item: item[0],
        )

    @strawberry.field
    async def pipeline(self, info: Info) -> PipelineRef:
        pipeline = await info.context.load(pipelines.get_many, self.row.pipeline_id)
        return registry.pipeline_node(found(pipeline, "pipeline"))

    @strawberry.field
    def organization(self, info: Info) -> OrganizationRef:
        return registry.organization_node(organization_of(info.context, self.row.organization_id))

    @strawberry.field
    def pull_request(self) -> PullRequest | None:
        pull_request = self.row.pull_request or {}
        return PullRequest(id=str(pull_request["id"])) if pull_request.get("id") else None

    @strawberry.field
    async def rebuilt_from(self, info: Info) -> BuildNode | None:
        build = await info.context.load(repository.get_many, self.row.rebuilt_from_id)
        return BuildNode(row=build) if build is not None else None

    @strawberry.field(description="The trigger step that created this build")
    async def triggered_from(self, info: Info) -> JobTypeTriggerRef | None:
        job = await info.context.load(jobs.get_many, self.row.triggered_from_job_id)
        return registry.trigger_job_node(job) if job is not None else None

    @strawberry.field(description="In step order, retried attempts included")
    async def jobs(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        type: list[JobTypes] | None = None,
        state: list[JobStates] | None = None,
        passed: bool | None = None,
        step: JobStepSearch | None = None,
    ) -> JobConnectionRef:
        return await registry.jobs_of(
            info,
            self.row.id,
            window=window_from(first, last, after, before),
            where=jobs.JobFilter(
                types=tuple(values(type)),
                states=tuple(values(state)),
                passed=passed,
                step_keys=tuple(step.key or ()) if step is not None else (),
            ),
        )

    @strawberry.field
    async def annotations(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        style: list[AnnotationStyle] | None = None,
        scope: list[AnnotationScope] | None = None,
        order: AnnotationOrder | None = AnnotationOrder.RECENTLY_CREATED,
    ) -> Connection[AnnotationRef]:
        styles, scopes = tuple(values(style)), tuple(values(scope))
        ordering = (order or AnnotationOrder.RECENTLY_CREATED).value
        window = window_from(first, last, after, before)
        return await paged(
            info,
            ("build_annotations", styles, scopes, ordering, window),
            self.row.id,
            pages=lambda session, ids: annotation_service.pages_for_builds(
                session, ids, styles=styles, scopes=scopes, order=ordering, window=window
            ),
            counts=lambda session, ids: annotation_service.counts_for_builds(
                session, ids, styles=styles, scopes=scopes
            ),
            wrap=registry.annotation_node,
        )


@registry.build_node.provide
def _wrap(build: Build) -> BuildNode:
    return BuildNode(row=build)


async def reveal_build(ctx: GraphQLContext, build: Build | None) -> BuildNode | None:
    shown = await ctx.reveal(build)
    return BuildNode(row=shown) if shown is not None else None


async def _by_slug(ctx: GraphQLContext, slug: str) -> Build | None:
    """`org/pipeline/number`."""
    org_slug, pipeline_slug, number = [*slug.split("/"), "", ""][:3]
    organization = caller_organization(ctx, slug=org_slug)
    parsed = parse_int(number, minimum=1, maximum=INT32_MAX)
    if organization is None or parsed is None:
        return None

    async def lookup(session: Any) -> Build:
        pipeline = await pipelines.get(session, organization_id=organization.id, slug=pipeline_slug)
        return await repository.get_by_number(session, pipeline_id=pipeline.id, number=parsed)

    try:
        return await ctx.read(lookup)
    except NotFound:
        return None


@strawberry.type
class BuildQuery:
    @strawberry.field(description='A build by UUID or slug ("org/pipeline/number")')
    async def build(
        self, info: Info, slug: strawberry.ID | None = None, uuid: strawberry.ID | None = None
    ) -> BuildNode | None:
        ctx = info.context
        if slug is not None:
            return await reveal_build(ctx, await _by_slug(ctx, slug))
        build_id = parse_uuid(uuid) if uuid else None
        return await reveal_build(ctx, await ctx.load(repository.get_many, build_id))


async def lookup_build(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    return await reveal_build(ctx, await ctx.load(repository.get_many, global_id.uuid))


# --- mutations ------------------------------------------------------------------------------


@strawberry.input(name="BuildMetaDataInput")
class BuildMetaDataInput:
    key: str
    value: str


@strawberry.input(name="BuildAuthorInput")
class BuildAuthorInput:
    name: str
    email: str


@strawberry.input(name="BuildCreateInput")
class BuildCreateInput(MutationInput):
    pipeline_id: strawberry.ID = strawberry.field(name="pipelineID")
    commit: str | None = strawberry.field(default=None, description='Defaults to "HEAD"')
    branch: str | None = strawberry.field(
        default=None, description="Defaults to the pipeline's default branch"
    )
    message: str | None = None
    env: list[str] | None = strawberry.field(default=None, description="KEY=value strings")
    meta_data: list[BuildMetaDataInput] | None = None
    author: BuildAuthorInput | None = None
    clean_checkout: bool | None = None


@strawberry.input(name="BuildCancelInput")
class BuildCancelInput(NodeMutationInput):
    pass


@strawberry.input(name="BuildRebuildInput")
class BuildRebuildInput(NodeMutationInput):
    pass


@strawberry.type(name="BuildCreatePayload")
class BuildCreatePayload(MutationPayload):
    build: BuildNode | None


@strawberry.type(name="BuildCancelPayload")
class BuildCancelPayload(MutationPayload):
    build: BuildNode


@strawberry.type(name="BuildRebuildPayload")
class BuildRebuildPayload(MutationPayload):
    build: BuildNode = strawberry.field(description="The build that was rebuilt")
    rebuild: BuildNode = strawberry.field(description="The new build")


@strawberry.type
class BuildMutation:
    @strawberry.mutation
    async def build_create(self, info: Info, input: BuildCreateInput) -> BuildCreatePayload | None:
        ctx = info.context
        pipeline = await pipeline_for_mutation(ctx, input.pipeline_id)
        organization = organization_of(ctx, pipeline.organization_id)
        user = ctx.principal.user
        author = input.author
        new = service.NewBuild(
            commit=input.commit or "HEAD",
            branch=input.branch or pipeline.default_branch,
            message=input.message,
            env=service.environment_from_pairs(input.env or []),
            meta_data={item.key: item.value for item in input.meta_data or []},
            author={"name": author.name, "email": author.email} if author else None,
            clean_checkout=bool(input.clean_checkout),
        )
        build = await ctx.write(
            lambda session: service.create(
                session,
                organization=organization,
                pipeline=pipeline,
                creator_id=user.id,
                new=new,
            )
        )
        return BuildCreatePayload(
            client_mutation_id=input.client_mutation_id, build=BuildNode(row=build)
        )

    @strawberry.mutation
    async def build_cancel(self, info: Info, input: BuildCancelInput) -> BuildCancelPayload | None:
        ctx = info.context
        build = await build_for_mutation(ctx, input.id)
        await ctx.write(lambda session: transitions.cancel(session, build=build))
        return BuildCancelPayload(
            client_mutation_id=input.client_mutation_id, build=BuildNode(row=build)
        )

    @strawberry.mutation
    async def build_rebuild(
        self, info: Info, input: BuildRebuildInput
    ) -> BuildRebuildPayload | None:
        ctx = info.context
        original = await build_for_mutation(ctx, input.id)
        organization = organization_of(ctx, original.organization_id)

        async def rebuild(session: Any) -> Build:
            pipeline = await pipelines.get_by_id(session, original.pipeline_id)
            return await service.rebuild(
                session,
                organization=organization,
                pipeline=pipeline,
                original=original,
                creator_id=ctx.principal.user_id,
            )

        new = await ctx.write(rebuild)
        return BuildRebuildPayload(
            client_mutation_id=input.client_mutation_id,
            build=BuildNode(row=original),
            rebuild=BuildNode(row=new),
        )
