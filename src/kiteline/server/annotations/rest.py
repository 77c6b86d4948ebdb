"""/v2 build annotations: list, create (replace or append by context), delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from kiteline.server.annotations import service
from kiteline.server.annotations.shapes import annotation_json
from kiteline.server.builds.locate import BUILDS, locate_build
from kiteline.server.kit.query import flag, one_of
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["annotations"])

ANNOTATIONS = BUILDS + "/{number}/annotations"


class AnnotationCreate(BaseModel):
    body: str
    style: str | None = None
    context: str | None = None
    priority: int | None = None
    append: bool = False


@router.get(ANNOTATIONS)
@router.get(ANNOTATIONS + "/", include_in_schema=False)
async def list_annotations(
    request: Request, org: str, pipeline: str, number: str
) -> list[dict[str, Any]]:
    scope = one_of(request.query_params, "scope", ("build", "job", "all")) or "build"
    omit_body = flag(request.query_params, "omit_body")
    async with api_transaction(request, "read_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        annotations = await service.list_for_build(session, build.id, scope=scope)
        return [annotation_json(a, omit_body=omit_body) for a in annotations]


@router.post(ANNOTATIONS, status_code=201)
@router.post(ANNOTATIONS + "/", status_code=201, include_in_schema=False)
async def create_annotation(
    request: Request, org: str, pipeline: str, number: str, body: AnnotationCreate
) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        annotation = await service.annotate(
            session,
            build_id=build.id,
            body=body.body,
            context=body.context,
            style=body.style,
            priority=body.priority,
            append=body.append,
        )
        return annotation_json(annotation)


@router.delete(ANNOTATIONS + "/{id_or_context}", status_code=204)
async def delete_annotation(
    request: Request, org: str, pipeline: str, number: str, id_or_context: str
) -> Response:
    async with api_transaction(request, "write_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        await service.remove(session, build_id=build.id, id_or_context=id_or_context)
    return Response(status_code=204)
