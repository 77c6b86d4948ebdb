"""GraphQL's Agent, the `agent` query, an organization's agents, and agentStop (through the
same service functions as REST's stop)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from kiteline.server.agents import service
from kiteline.server.agents.models import Agent
from kiteline.server.agents.stop import stop
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import caller_organization
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationPayload, NodeMutationInput
from kiteline.server.graphql.node import Node, RowUUID, found, id_of
from kiteline.server.graphql.refs import JobRef, OrganizationRef
from kiteline.server.jobs import service as jobs
from kiteline.server.jobs.service import Job as JobRow
from kiteline.server.kit.ids import parse_uuid


@strawberry.type(name="OperatingSystem")
class OperatingSystem:
    name: str


@strawberry.type(name="Agent")
class AgentNode(Node, RowUUID):
    row: strawberry.Private[Agent]

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def hostname(self) -> str | None:
        return self.row.hostname

    @strawberry.field
    def ip_address(self) -> str | None:
        return self.row.ip_address

    @strawberry.field
    def pid(self) -> int | None:
        return self.row.pid

    @strawberry.field
    def version(self) -> str | None:
        return self.row.version

    @strawberry.field
    def user_agent(self) -> str | None:
        return self.row.user_agent

    @strawberry.field
    def operating_system(self) -> OperatingSystem | None:
        return OperatingSystem(name=self.row.os) if self.row.os else None

    @strawberry.field(description="The agent's tags, as key=value")
    def meta_data(self) -> list[str] | None:
        return list(self.row.meta_data)

    @strawberry.field
    def priority(self) -> int | None:
        return self.row.priority

    @strawberry.field(
        description="never_connected, connected, disconnected, stopping, stopped or lost"
    )
    def connection_state(self) -> str:
        return self.row.connection_state

    @strawberry.field
    def connected_at(self) -> datetime | None:
        return self.row.connected_at

    @strawberry.field
    def disconnected_at(self) -> datetime | None:
        return self.row.disconnected_at

    @strawberry.field
    def lost_at(self) -> datetime | None:
        return self.row.lost_at

    @strawberry.field
    def stopped_at(self) -> datetime | None:
        return self.row.stopped_at

    @strawberry.field
    def heartbeat_at(self) -> datetime | None:
        return self.row.last_heartbeat_at

    @strawberry.field
    def pinged_at(self) -> datetime | None:
        return self.row.last_seen_at

    @strawberry.field
    def created_at(self) -> datetime | None:
        return self.row.created_at

    @strawberry.field
    async def is_running_job(self, info: Info) -> bool:
        return await current_job(info.context, self.row.id) is not None

    @strawberry.field(description="The job the agent is running")
    async def job(self, info: Info) -> JobRef | None:
        job = await current_job(info.context, self.row.id)
        return registry.job_node(job) if job is not None else None

    @strawberry.field(description="Kiteline agents are never paused")
    def paused(self) -> bool:
        return False

    @strawberry.field
    def public(self) -> bool:
        return False

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationRef | None:
        organization = caller_organization(info.context, id_=self.row.organization_id)
        return registry.organization_node(organization) if organization else None


async def current_job(ctx: GraphQLContext, agent_id: uuid.UUID) -> JobRow | None:
    async def fetch(session: Any, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, JobRow]:
        return await jobs.current_for_agents(session, agent_ids)

    return await ctx.loader("agent_current_job", fetch).load(agent_id)


@registry.agent_node.provide
def _node(row: Agent) -> AgentNode:
    return AgentNode(row=row)


async def reveal_agent(ctx: GraphQLContext, agent: Agent | None) -> AgentNode | None:
    shown = await ctx.reveal(agent)
    return AgentNode(row=shown) if shown is not None else None


@strawberry.type
class AgentQuery:
    @strawberry.field(description='An agent by slug ("org/agent-uuid")')
    async def agent(self, info: Info, slug: strawberry.ID) -> AgentNode | None:
        ctx = info.context
        org_slug, _, agent_id = slug.partition("/")
        organization = caller_organization(ctx, slug=org_slug)
        agent = await ctx.load(service.get_many, parse_uuid(agent_id))
        if organization is None or agent is None or agent.organization_id != organization.id:
            return None
        return await reveal_agent(ctx, agent)


async def lookup_agent(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    return await reveal_agent(ctx, await ctx.load(service.get_many, global_id.uuid))


@strawberry.input(name="AgentStopInput")
class AgentStopInput(NodeMutationInput):
    graceful: bool | None = strawberry.field(
        default=True, description="Let the current job finish first (else it is canceled)"
    )


@strawberry.type(name="AgentStopPayload")
class AgentStopPayload(MutationPayload):
    agent: AgentNode


@strawberry.type
class AgentMutation:
    @strawberry.mutation
    async def agent_stop(self, info: Info, input: AgentStopInput) -> AgentStopPayload | None:
        ctx = info.context
        agent_id = id_of(input.id, {"Agent"}, "agent")
        agent = found(await ctx.reveal(await ctx.load(service.get_many, agent_id)), "agent")

        async def stop_it(session: Any) -> None:
            await stop(session, agent, force=input.graceful is False)

        await ctx.write(stop_it)
        return AgentStopPayload(
            client_mutation_id=input.client_mutation_id, agent=AgentNode(row=agent)
        )
