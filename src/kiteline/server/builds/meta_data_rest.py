"""/v2 build meta-data: list, get and set keys, as the seed documents them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kiteline.server.builds import meta_data, repository
from kiteline.server.builds.locate import BUILDS, locate_build
from kiteline.server.kit.errors import NotFound
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["meta-data"])

META_DATA = BUILDS + "/{number}/meta-data"


class MetaDataSet(BaseModel):
    key: str
    value: str


@router.get(META_DATA)
@router.get(META_DATA + "/", include_in_schema=False)
async def list_meta_data(request: Request, org: str, pipeline: str, number: str) -> dict[str, str]:
    async with api_transaction(request, "read_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        return (await repository.meta_data_for(session, [build.id]))[build.id]


@router.get(META_DATA + "/{key:path}")
async def get_meta_data(
    request: Request, org: str, pipeline: str, number: str, key: str
) -> dict[str, Any]:
    async with api_transaction(request, "read_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        value = await repository.get_meta_data(session, build.id, key)
    if value is None:
        raise NotFound.of("meta-data")
    return {"key": key, "value": value}


@router.post(META_DATA, status_code=201)
@router.post(META_DATA + "/", status_code=201, include_in_schema=False)
async def set_meta_data(
    request: Request, org: str, pipeline: str, number: str, body: MetaDataSet
) -> dict[str, Any]:
    async with api_transaction(request, "write_builds") as (session, principal):
        _, _, build = await locate_build(session, principal, org, pipeline, number)
        await meta_data.set_meta_data(session, build.id, {body.key: body.value})
    return {"key": body.key, "value": body.value}
