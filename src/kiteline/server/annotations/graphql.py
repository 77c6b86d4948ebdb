"""GraphQL's Annotation, a build's annotations, and buildAnnotate (through the same service
function as REST's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from kiteline.server.annotations import service
from kiteline.server.annotations.models import Annotation
from kiteline.server.annotations.shapes import annotation_json
from kiteline.server.builds import repository as build_repository
from kiteline.server.graphql import registry
from kiteline.server.graphql.access import build_for_mutation
from kiteline.server.graphql.connections import Edge, row_edge
from kiteline.server.graphql.context import GraphQLContext, Info
from kiteline.server.graphql.enums import AnnotationScope, AnnotationStyle
from kiteline.server.graphql.ids import GlobalId
from kiteline.server.graphql.mutations import MutationInput, MutationPayload
from kiteline.server.graphql.node import Node
from kiteline.server.graphql.refs import BuildRef


@strawberry.type(name="AnnotationBody")
class AnnotationBody:
    text: str
    html: str | None


@strawberry.type(name="Annotation")
class AnnotationNode(Node):
    row: strawberry.Private[Annotation]

    @strawberry.field
    def uuid(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def context(self) -> str:
        return self.row.context

    @strawberry.field
    def style(self) -> AnnotationStyle | None:
        return AnnotationStyle(self.row.style)

    @strawberry.field
    def priority(self) -> int:
        return self.row.priority

    @strawberry.field
    def scope(self) -> AnnotationScope:
        return AnnotationScope(self.row.scope)

    @strawberry.field(description="The Markdown as given, and rendered as REST renders it")
    def body(self) -> AnnotationBody | None:
        return AnnotationBody(text=self.row.body, html=annotation_json(self.row)["body_html"])

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> datetime | None:
        return self.row.updated_at


@registry.annotation_node.provide
def _wrap(annotation: Annotation) -> AnnotationNode:
    return AnnotationNode(row=annotation)


async def lookup_annotation(ctx: GraphQLContext, global_id: GlobalId) -> Node | None:
    """An annotation is visible with its build."""
    annotation = await ctx.load(service.get_many, global_id.uuid)
    if annotation is None:
        return None
    build = await ctx.reveal(await ctx.load(build_repository.get_many, annotation.build_id))
    return AnnotationNode(row=annotation) if build is not None else None


@strawberry.input(name="BuildAnnotateInput")
class BuildAnnotateInput(MutationInput):
    build_id: strawberry.ID = strawberry.field(name="buildID")
    body: str | None = None
    style: AnnotationStyle | None = AnnotationStyle.DEFAULT
    context: str | None = "default"
    priority: int | None = 3
    append: bool | None = False


@strawberry.type(name="BuildAnnotatePayload")
class BuildAnnotatePayload(MutationPayload):
    annotation: AnnotationNode | None
    annotation_edge: Edge[AnnotationNode] | None
    build: BuildRef | None


@strawberry.type
class AnnotationMutation:
    @strawberry.mutation
    async def build_annotate(
        self, info: Info, input: BuildAnnotateInput
    ) -> BuildAnnotatePayload | None:
        ctx = info.context
        build = await build_for_mutation(ctx, input.build_id)

        async def annotate(session: Any) -> Annotation:
            return await service.annotate(
                session,
                build_id=build.id,
                body=input.body or "",
                context=input.context,
                style=input.style.value if input.style is not None else None,
                priority=input.priority,
                append=bool(input.append),
            )

        annotation = await ctx.write(annotate)
        node = AnnotationNode(row=annotation)
        return BuildAnnotatePayload(
            client_mutation_id=input.client_mutation_id,
            annotation=node,
            annotation_edge=row_edge(annotation, node),
            build=registry.build_node(build),
        )
