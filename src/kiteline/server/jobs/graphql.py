"""GraphQL's jobs: the `Job` union of JobTypeCommand, JobTypeWait, JobTypeBlock and
JobTypeTrigger, the `job` query, and jobTypeCommandRetry, jobTypeCommandCancel and
jobTypeBlockUnblock (through the same build service functions as REST).

States are JobStates as stored (a finished job is FINISHED, with `passed` telling how it went;
REST says `passed`/`failed` instead).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, cast

import strawberry

from kiteline.server.agents import service as agents
from kiteline.server.artifacts import service as artifact_service
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds import transitions as build_transitions
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import build_web_url, organization_of
from kiteline.server.graphql.connections import Connection, listed, paged, window_from
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import (
    ArtifactStates,
    JobEventSignalReason,
    JobRetryTypes,
    JobStates,
)
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationPayload, NodeMutationInput
from kiteline.server.graphql.node import Node, RowUUID, found, id_of
from kiteline.server.graphql.refs import (
    AgentRef,
    ArtifactRef,
    BuildRef,
    JobRef,
    PipelineRef,
    UserRef,
)
from kiteline.server.graphql.scalars import JSONValue
from kiteline.server.jobs import service
from kiteline.server.jobs.environment import job_environment
from kiteline.server.jobs.models import Job as JobRow
from kiteline.server.jobs.states import JobState, JobType
from kiteline.server.kit.errors import BadRequest
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.keyset import Window
from kiteline.server.pipelines import service as pipelines
from kiteline.server.users import service as users


@strawberry.interface(name="Step", description="The pipeline step a job runs")
class Step:
    uuid: str
    key: str | None


def _step_type(name: str) -> type[Step]:
    """One of Buildkite's Step types, which differ only in their names."""
    return strawberry.type(type(name, (Step,), {"__module__": __name__}), name=name)


#: A job's type → the type of its step.
_STEP_TYPES: dict[str, type[Step]] = {
    JobType.SCRIPT: _step_type("StepCommand"),
    JobType.WAITER: _step_type("StepWait"),
    JobType.MANUAL: _step_type("StepInput"),
    JobType.TRIGGER: _step_type("StepTrigger"),
}


def _step(self: JobFields) -> Step | None:
    return _STEP_TYPES[self.row.type](uuid=str(self.row.step_id), key=self.row.step_key)


def _step_field(kind: JobType) -> Any:
    """A job type's `step` field, of its own Step type."""
    return strawberry.field(resolver=_step, graphql_type=_STEP_TYPES[kind] | None)


@strawberry.type(name="JobPriority")
class JobPriority:
    number: int


@strawberry.type(name="JobConcurrency")
class JobConcurrency:
    group: str
    limit: int


#: A stored state's member, without an enum call per job.
_JOB_STATES = {state.value: state for state in JobStates}


@strawberry.interface(name="JobInterface", description="What every job knows of its retries")
class JobInterface(RowUUID):
    row: strawberry.Private[JobRow]

    @strawberry.field
    def retried(self) -> bool:
        return self.row.retried

    @strawberry.field
    def retries_count(self) -> int | None:
        return self.row.retries_count or None

    @strawberry.field(description="The attempt this one retries")
    async def retry_source(self, info: Info) -> JobRef | None:
        source = await info.context.load(service.get_many, self.row.retry_source_job_id)
        return job_node(source) if source is not None else None

    @strawberry.field
    def retry_type(self) -> JobRetryTypes | None:
        return JobRetryTypes(self.row.retry_type) if self.row.retry_type else None


@strawberry.type(name="JobFields", description="Never in the schema: fields every job type has")
class JobFields:
    row: strawberry.Private[JobRow]

    @strawberry.field
    def label(self) -> str | None:
        return self.row.label

    @strawberry.field
    def state(self) -> JobStates:
        state = self.row.state
        return _JOB_STATES.get(state) or JobStates(state)

    @strawberry.field
    async def build(self, info: Info) -> BuildRef | None:
        build = await info.context.load(build_repository.get_many, self.row.build_id)
        return registry.build_node(build) if build is not None else None


@strawberry.type(name="JobTypeCommand")
class JobTypeCommand(Node, JobInterface, JobFields):
    row: strawberry.Private[JobRow]

    @strawberry.field
    def command(self) -> str | None:
        return self.row.command

    @strawberry.field(description='The exit status as a string ("0"); null until finished')
    def exit_status(self) -> str | None:
        return str(self.row.exit_status) if self.row.exit_status is not None else None

    @strawberry.field
    def passed(self) -> bool:
        return bool(self.row.passed)

    @strawberry.field
    def soft_failed(self) -> bool:
        return self.row.soft_failed

    @strawberry.field(description="The job on its build's page on this server")
    async def url(self, info: Info) -> str:
        return await job_url(info.context, self.row)

    @strawberry.field(description="The environment the job runs with, as KEY=value")
    async def env(self, info: Info) -> list[str] | None:
        environment = await environment_of(info.context, self.row)
        return [f"{key}={value}" for key, value in sorted(environment.items())]

    @strawberry.field
    def agent(self, info: Info) -> AgentRef | None:
        # Prefetched with the page (`jobs_of`): no coroutine per job.
        return info.context.loaded(agents.get_many, self.row.agent_id, registry.agent_node)

    @strawberry.field
    def agent_query_rules(self) -> list[str] | None:
        return list(self.row.agent_query_rules)

    @strawberry.field
    async def pipeline(self, info: Info) -> PipelineRef | None:
        pipeline = await info.context.load(pipelines.get_many, self.row.pipeline_id)
        return registry.pipeline_node(pipeline) if pipeline is not None else None

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.row.created_at

    @strawberry.field
    def runnable_at(self) -> datetime | None:
        return self.row.runnable_at

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
    def canceled_at(self) -> datetime | None:
        return self.row.canceled_at

    @strawberry.field
    def expired_at(self) -> datetime | None:
        return self.row.expired_at

    @strawberry.field
    def signal(self) -> str | None:
        return self.row.signal

    @strawberry.field(description="Null for reasons Buildkite's enum has no name for")
    def signal_reason(self) -> JobEventSignalReason | None:
        known = {reason.value for reason in JobEventSignalReason}
        reason = self.row.signal_reason
        return JobEventSignalReason(reason) if reason in known else None

    @strawberry.field
    def parallel_group_index(self) -> int | None:
        return self.row.definition.parallel_job

    @strawberry.field
    def parallel_group_total(self) -> int | None:
        return self.row.definition.parallel_job_count

    @strawberry.field
    def matrix(self) -> JSONValue | None:
        matrix = self.row.definition.matrix
        return JSONValue(matrix) if matrix is not None else None

    @strawberry.field
    def priority(self) -> JobPriority:
        return JobPriority(number=self.row.priority)

    @strawberry.field
    def concurrency(self) -> JobConcurrency | None:
        group, limit = self.row.concurrency_group, self.row.concurrency
        return JobConcurrency(group=group, limit=limit) if group and limit else None

    step = _step_field(JobType.SCRIPT)

    @strawberry.field
    async def artifacts(
        self,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        after: str | None = None,
        before: str | None = None,
        path: str | None = None,
        state: ArtifactStates | None = None,
    ) -> Connection[ArtifactRef]:
        stored = state.value if state is not None else None
        return await listed(
            info,
            ("job_artifacts", path, stored),
            self.row.id,
            fetch=lambda session, ids: artifact_service.list_for_jobs(
                session, ids, state=stored, path=path
            ),
            window=window_from(first, last, after, before),
            wrap=registry.artifact_node,
        )


@strawberry.type(name="JobTypeWait")
class JobTypeWait(Node, JobInterface, JobFields):
    row: strawberry.Private[JobRow]

    step = _step_field(JobType.WAITER)


@strawberry.type(name="JobTypeBlock")
class JobTypeBlock(Node, JobInterface, JobFields):
    row: strawberry.Private[JobRow]

    @strawberry.field
    def is_unblockable(self) -> bool | None:
        return self.row.state == JobState.BLOCKED

    @strawberry.field
    def unblocked_at(self) -> datetime | None:
        return self.row.unblocked_at

    @strawberry.field
    async def unblocked_by(self, info: Info) -> UserRef | None:
        user = await info.context.load(users.get_many, self.row.unblocked_by_id)
        return registry.user_node(user) if user is not None else None

    step = _step_field(JobType.MANUAL)


@strawberry.type(name="JobTypeTrigger")
class JobTypeTrigger(Node, JobInterface, JobFields):
    row: strawberry.Private[JobRow]

    @strawberry.field(name="async")
    def is_async(self) -> bool:
        return self.row.definition.async_

    @strawberry.field(description="The build this step created")
    async def triggered(self, info: Info) -> BuildRef | None:
        build = await info.context.load(build_repository.get_many, self.row.triggered_build_id)
        return registry.build_node(build) if build is not None else None

    step = _step_field(JobType.TRIGGER)


Job = Annotated[
    JobTypeCommand | JobTypeWait | JobTypeBlock | JobTypeTrigger, strawberry.union("Job")
]


@strawberry.type(name="JobConnection")
class JobConnection(Connection[Job]):
    """Named here: strawberry can't name a connection of a union it meets lazily."""


_TYPES: dict[JobType, type[JobTypeCommand | JobTypeWait | JobTypeBlock | JobTypeTrigger]] = {
    JobType.SCRIPT: JobTypeCommand,
    JobType.WAITER: JobTypeWait,
    JobType.MANUAL: JobTypeBlock,
    JobType.TRIGGER: JobTypeTrigger,
}
_TYPES_BY_VALUE = {kind.value: node_type for kind, node_type in _TYPES.items()}
_TYPE_NAMES = {
    JobType.SCRIPT: "JobTypeCommand",
    JobType.WAITER: "JobTypeWait",
    JobType.MANUAL: "JobTypeBlock",
    JobType.TRIGGER: "JobTypeTrigger",
}


@registry.job_node.provide
def job_node(job: JobRow) -> JobTypeCommand | JobTypeWait | JobTypeBlock | JobTypeTrigger:
    node_type = _TYPES_BY_VALUE.get(job.type)  # no enum call per job
    return (node_type or _TYPES[JobType(job.type)])(row=job)


async def job_url(ctx: GraphQLContext, job: JobRow) -> str:
    build = found(await ctx.load(build_repository.get_many, job.build_id), "build")
    return f"{await build_web_url(ctx, build)}#{job.id}"


async def environment_of(ctx: GraphQLContext, job: JobRow) -> dict[str, str]:
    """The job's environment exactly as REST's `…/env` computes it (rows loaded in batches)."""
    build = found(await ctx.load(build_repository.get_many, job.build_id), "build")
    pipeline, agent, creator = await asyncio.gather(
        ctx.load(pipelines.get_many, build.pipeline_id),
        ctx.load(agents.get_many, job.agent_id),
        ctx.load(users.get_many, build.creator_id),
    )
    pipeline = found(pipeline, "pipeline")
    organization = organization_of(ctx, build.organization_id)
    return job_environment(
        job=job,
        build=build,
        pipeline=pipeline,
        organization=organization,
        agent=agent,
        creator=creator,
        urls=ctx.urls,
    )


@registry.command_job_node.provide
def _command_job_node(job: JobRow) -> JobTypeCommand:
    return JobTypeCommand(row=job)


@registry.trigger_job_node.provide
def _trigger_job_node(job: JobRow) -> JobTypeTrigger:
    return JobTypeTrigger(row=job)


@registry.jobs_of.provide
async def jobs_of(
    info: Info, build_id: uuid.UUID, *, window: Window, where: service.JobFilter
) -> JobConnection:
    ctx = info.context
    found_jobs = await paged(
        info,
        ("build_jobs", where, window),
        build_id,
        pages=lambda session, ids: service.pages_for_builds(
            session, ids, where=where, window=window
        ),
        counts=lambda session, ids: service.counts_for_builds(session, ids, where=where),
        wrap=job_node,
        kind=JobConnection,
        prefetch={"agent": lambda rows: ctx.prefetch(agents.get_many, (r.agent_id for r in rows))},
    )
    return cast(JobConnection, found_jobs)


async def reveal_job(ctx: GraphQLContext, job: JobRow | None) -> Job | None:
    shown = await ctx.reveal(job)
    return job_node(shown) if shown is not None else None


@strawberry.type
class JobQuery:
    @strawberry.field(description="A job by UUID (use `... on JobTypeCommand` for its fields)")
    async def job(self, info: Info, uuid: strawberry.ID) -> Job | None:
        ctx = info.context
        return await reveal_job(ctx, await ctx.load(service.get_many, parse_uuid(uuid)))


async def lookup_job(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    """`Job---uuid` names any job; `JobTypeCommand---uuid` and the like only one of that type."""
    job = await ctx.load(service.get_many, global_id.uuid)
    if job is None or global_id.type_name not in ("Job", _TYPE_NAMES[JobType(job.type)]):
        return None
    return await reveal_job(ctx, job)


async def job_for_mutation(ctx: GraphQLContext, id_: str, kind: JobType) -> JobRow:
    """The job a mutation names (as `Job---` or its own type), or why it can't be that one."""
    type_name = _TYPE_NAMES[kind]
    job_id = id_of(id_, {"Job", type_name}, "job")
    job = found(await ctx.reveal(await ctx.load(service.get_many, job_id)), "job")
    if job.type != kind:
        raise BadRequest(f"The job is a {_TYPE_NAMES[JobType(job.type)]}, not a {type_name}")
    return job


# --- mutations ------------------------------------------------------------------------------


@strawberry.input(name="JobTypeCommandRetryInput")
class JobTypeCommandRetryInput(NodeMutationInput):
    pass


@strawberry.input(name="JobTypeCommandCancelInput")
class JobTypeCommandCancelInput(NodeMutationInput):
    pass


@strawberry.input(name="JobTypeBlockUnblockInput")
class JobTypeBlockUnblockInput(NodeMutationInput):
    fields: JSONValue | None = strawberry.field(
        default=None, description='Field values by key, as a JSON string (`"{}"` for none)'
    )


@strawberry.type(name="JobTypeCommandRetryPayload")
class JobTypeCommandRetryPayload(MutationPayload):
    job_type_command: JobTypeCommand = strawberry.field(description="The attempt retried")
    retried_in_job_type_command: JobTypeCommand = strawberry.field(description="The new one")


@strawberry.type(name="JobTypeCommandCancelPayload")
class JobTypeCommandCancelPayload(MutationPayload):
    job_type_command: JobTypeCommand


@strawberry.type(name="JobTypeBlockUnblockPayload")
class JobTypeBlockUnblockPayload(MutationPayload):
    job_type_block: JobTypeBlock


def _fields(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("fields must be a JSON object of field keys and values")
    return value


@strawberry.type
class JobMutation:
    @strawberry.mutation
    async def job_type_command_retry(
        self, info: Info, input: JobTypeCommandRetryInput
    ) -> JobTypeCommandRetryPayload | None:
        ctx = info.context
        job = await job_for_mutation(ctx, input.id, JobType.SCRIPT)
        new = await ctx.write(lambda session: build_transitions.retry_job(session, job=job))
        return JobTypeCommandRetryPayload(
            client_mutation_id=input.client_mutation_id,
            job_type_command=JobTypeCommand(row=job),
            retried_in_job_type_command=JobTypeCommand(row=new),
        )

    @strawberry.mutation
    async def job_type_command_cancel(
        self, info: Info, input: JobTypeCommandCancelInput
    ) -> JobTypeCommandCancelPayload | None:
        ctx = info.context
        job = await job_for_mutation(ctx, input.id, JobType.SCRIPT)
        await ctx.write(lambda session: build_transitions.cancel_job(session, job=job))
        return JobTypeCommandCancelPayload(
            client_mutation_id=input.client_mutation_id, job_type_command=JobTypeCommand(row=job)
        )

    @strawberry.mutation
    async def job_type_block_unblock(
        self, info: Info, input: JobTypeBlockUnblockInput
    ) -> JobTypeBlockUnblockPayload | None:
        ctx = info.context
        job = await job_for_mutation(ctx, input.id, JobType.MANUAL)
        fields = _fields(input.fields)
        await ctx.write(
            lambda session: build_transitions.unblock_job(
                session, job=job, fields=fields, unblocked_by_id=ctx.principal.user_id
            )
        )
        return JobTypeBlockUnblockPayload(
            client_mutation_id=input.client_mutation_id, job_type_block=JobTypeBlock(row=job)
        )
