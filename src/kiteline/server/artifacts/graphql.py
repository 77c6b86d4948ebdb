"""GraphQL's Artifact, a job's artifacts and the `artifact` query."""

from __future__ import annotations

from datetime import datetime

import strawberry

from kiteline.server.agent_api.artifacts import DOWNLOAD_PATH, signed_url
from kiteline.server.artifacts import service
from kiteline.server.artifacts.models import Artifact
from kiteline.server.graphql import registry
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.node import Node
from kiteline.server.graphql.refs import JobTypeCommandRef
from kiteline.server.graphql.scalars import JSInt
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.ids import parse_uuid


@strawberry.type(name="Artifact")
class ArtifactNode(Node):
    row: strawberry.Private[Artifact]

    @strawberry.field
    def uuid(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def path(self) -> str:
        return self.row.path

    @strawberry.field(description="In bytes")
    def size(self) -> JSInt:
        return JSInt(self.row.file_size)

    @strawberry.field
    def mime_type(self) -> str:
        return self.row.mime_type

    @strawberry.field
    def sha1sum(self) -> str:
        return self.row.sha1sum or ""

    @strawberry.field
    def sha256sum(self) -> str | None:
        return self.row.sha256sum

    @strawberry.field(description="new, error, finished, deleted or expired")
    def state(self) -> str:
        return self.row.state

    @strawberry.field(
        name="downloadURL",
        description="A signed URL that needs no token, valid for KITELINE_SIGNED_URL_TTL_SECONDS",
    )
    def download_url(self, info: Info) -> str:
        return signed_url(info.context.request, "GET", DOWNLOAD_PATH, self.row)

    @strawberry.field
    def expires_at(self) -> datetime | None:
        return None

    @strawberry.field
    async def job(self, info: Info) -> JobTypeCommandRef | None:
        job = await info.context.load(jobs.get_many, self.row.job_id)
        return registry.command_job_node(job) if job is not None else None


@registry.artifact_node.provide
def _node(row: Artifact) -> ArtifactNode:
    return ArtifactNode(row=row)


async def reveal_artifact(ctx: GraphQLContext, artifact: Artifact | None) -> ArtifactNode | None:
    shown = await ctx.reveal(artifact)
    return ArtifactNode(row=shown) if shown is not None and shown.state != "deleted" else None


@strawberry.type
class ArtifactQuery:
    @strawberry.field(description="An artifact by UUID")
    async def artifact(self, info: Info, uuid: strawberry.ID) -> ArtifactNode | None:
        ctx = info.context
        return await reveal_artifact(ctx, await ctx.load(service.get_many, parse_uuid(uuid)))


async def lookup_artifact(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    return await reveal_artifact(ctx, await ctx.load(service.get_many, global_id.uuid))
