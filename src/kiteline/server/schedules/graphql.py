"""GraphQL's PipelineSchedule, `pipelineSchedule(slug:)`, and pipelineScheduleCreate,
pipelineScheduleUpdate and pipelineScheduleDelete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from kiteline.server.graphql import registry
from kiteline.server.graphql.access import pipeline_for_mutation
from kiteline.server.graphql.connections import Edge, row_edge
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationInput, MutationPayload, NodeMutationInput
from kiteline.server.graphql.node import Node, RowUUID, found, id_of
from kiteline.server.graphql.refs import PipelineRef
from kiteline.server.kit.db import utcnow
from kiteline.server.kit.ids import graphql_id, parse_uuid
from kiteline.server.pipelines import service as pipelines
from kiteline.server.schedules import service
from kiteline.server.schedules.models import PipelineSchedule


@strawberry.type(name="PipelineSchedule")
class PipelineScheduleNode(Node, RowUUID):
    row: strawberry.Private[PipelineSchedule]

    @strawberry.field
    def label(self) -> str | None:
        return self.row.label

    @strawberry.field(description="Five cron fields or @daily-style, then an optional time zone")
    def cronline(self) -> str | None:
        return self.row.cronline

    @strawberry.field
    def branch(self) -> str | None:
        return self.row.branch

    @strawberry.field
    def commit(self) -> str | None:
        return self.row.commit

    @strawberry.field
    def message(self) -> str | None:
        return self.row.message

    @strawberry.field(description="As KEY=value")
    def env(self) -> list[str] | None:
        return [f"{key}={value}" for key, value in self.row.env.items()]

    @strawberry.field
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field(description="When its next build is due; null while disabled")
    def next_build_at(self) -> datetime | None:
        return self.row.next_build_at

    @strawberry.field(description="When it last failed to create a build")
    def failed_at(self) -> datetime | None:
        return self.row.failed_at

    @strawberry.field
    def failed_message(self) -> str | None:
        return self.row.failed_message

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.row.created_at

    @strawberry.field
    async def pipeline(self, info: Info) -> PipelineRef | None:
        ctx = info.context
        pipeline = await ctx.reveal(await ctx.load(pipelines.get_many, self.row.pipeline_id))
        return registry.pipeline_node(pipeline) if pipeline is not None else None


@registry.schedule_node.provide
def _node(row: PipelineSchedule) -> PipelineScheduleNode:
    return PipelineScheduleNode(row=row)


async def _visible(ctx: GraphQLContext, schedule: PipelineSchedule | None) -> bool:
    if schedule is None:
        return False
    pipeline = await ctx.load(pipelines.get_many, schedule.pipeline_id)
    return await ctx.reveal(pipeline) is not None


async def lookup_schedule(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    schedule = await ctx.load(service.get_many, global_id.uuid)
    return (
        PipelineScheduleNode(row=schedule) if schedule and await _visible(ctx, schedule) else None
    )


@strawberry.type
class ScheduleQuery:
    @strawberry.field(description='A schedule by slug: "org/pipeline/<schedule uuid>"')
    async def pipeline_schedule(
        self, info: Info, slug: strawberry.ID | None = None, uuid: strawberry.ID | None = None
    ) -> PipelineScheduleNode | None:
        text = str(uuid or str(slug or "").rpartition("/")[2])
        parsed = parse_uuid(text)
        schedule = await info.context.load(service.get_many, parsed) if parsed else None
        if schedule is None or not await _visible(info.context, schedule):
            return None
        return PipelineScheduleNode(row=schedule)


@strawberry.input(name="PipelineScheduleCreateInput")
class PipelineScheduleCreateInput(MutationInput):
    pipeline_id: strawberry.ID = strawberry.field(name="pipelineID")
    label: str | None = None
    cronline: str | None = None
    branch: str | None = None
    commit: str | None = None
    message: str | None = None
    env: str | None = None
    enabled: bool | None = True


@strawberry.input(name="PipelineScheduleUpdateInput")
class PipelineScheduleUpdateInput(NodeMutationInput):
    label: str | None = None
    cronline: str | None = None
    branch: str | None = None
    commit: str | None = None
    message: str | None = None
    env: str | None = None
    enabled: bool | None = None


@strawberry.input(name="PipelineScheduleDeleteInput")
class PipelineScheduleDeleteInput(NodeMutationInput):
    pass


@strawberry.type(name="PipelineScheduleCreatePayload")
class PipelineScheduleCreatePayload(MutationPayload):
    pipeline: PipelineRef
    pipeline_schedule_edge: Edge[PipelineScheduleNode]


@strawberry.type(name="PipelineScheduleUpdatePayload")
class PipelineScheduleUpdatePayload(MutationPayload):
    pipeline_schedule: PipelineScheduleNode


@strawberry.type(name="PipelineScheduleDeletePayload")
class PipelineScheduleDeletePayload(MutationPayload):
    deleted_pipeline_schedule_id: strawberry.ID = strawberry.field(name="deletedPipelineScheduleID")
    pipeline: PipelineRef


def _given(input: Any) -> dict[str, Any]:
    return {
        key: getattr(input, key)
        for key in service.EDITABLE
        if getattr(input, key, None) is not None
    }


async def _schedule_for_mutation(ctx: GraphQLContext, id_: str) -> PipelineSchedule:
    schedule_id = id_of(id_, {"PipelineSchedule"}, "pipeline schedule")
    schedule = await ctx.load(service.get_many, schedule_id)
    if not await _visible(ctx, schedule):
        schedule = None
    return found(schedule, "pipeline schedule")


@strawberry.type
class ScheduleMutation:
    @strawberry.mutation
    async def pipeline_schedule_create(
        self, info: Info, input: PipelineScheduleCreateInput
    ) -> PipelineScheduleCreatePayload | None:
        ctx = info.context
        pipeline = await pipeline_for_mutation(ctx, input.pipeline_id)
        schedule = await ctx.write(
            lambda session: service.create(
                session,
                pipeline=pipeline,
                created_by_id=ctx.principal.user_id,
                now=utcnow(),
                fields=_given(input),
            )
        )
        node = PipelineScheduleNode(row=schedule)
        return PipelineScheduleCreatePayload(
            client_mutation_id=input.client_mutation_id,
            pipeline=registry.pipeline_node(pipeline),
            pipeline_schedule_edge=row_edge(schedule, node),
        )

    @strawberry.mutation
    async def pipeline_schedule_update(
        self, info: Info, input: PipelineScheduleUpdateInput
    ) -> PipelineScheduleUpdatePayload | None:
        ctx = info.context
        schedule = await _schedule_for_mutation(ctx, input.id)
        fields = _given(input)

        async def change(session: Any) -> PipelineSchedule:
            current = await service.get(session, schedule.id)
            return await service.update(session, current, fields, now=utcnow())

        updated = await ctx.write(change)
        return PipelineScheduleUpdatePayload(
            client_mutation_id=input.client_mutation_id,
            pipeline_schedule=PipelineScheduleNode(row=updated),
        )

    @strawberry.mutation
    async def pipeline_schedule_delete(
        self, info: Info, input: PipelineScheduleDeleteInput
    ) -> PipelineScheduleDeletePayload | None:
        ctx = info.context
        schedule = await _schedule_for_mutation(ctx, input.id)
        pipeline = await pipeline_for_mutation(ctx, graphql_id("Pipeline", schedule.pipeline_id))

        async def remove(session: Any) -> None:
            await service.delete(session, await service.get(session, schedule.id))

        await ctx.write(remove)
        return PipelineScheduleDeletePayload(
            client_mutation_id=input.client_mutation_id,
            deleted_pipeline_schedule_id=strawberry.ID(graphql_id("PipelineSchedule", schedule.id)),
            pipeline=registry.pipeline_node(pipeline),
        )
