"""/v2/organizations/{org}/rate_limit: the organization's REST budget, this request included."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from kiteline.server.kit.ratelimit import ORG_SCOPE, recorded_usage
from kiteline.server.kit.timefmt import iso
from kiteline.server.organizations import service
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["organizations"])


@router.get("/organizations/{org}/rate_limit")
async def get_rate_limit(request: Request, org: str) -> dict[str, Any]:
    async with api_transaction(request, "read_organizations") as (session, principal):
        await service.get_for_user(session, slug=org, user_id=principal.user_id)
    usage = recorded_usage(request, ORG_SCOPE)
    if usage is None:
        rest: dict[str, Any] = {
            "limit": 0,
            "current": 0,
            "reset": 0,
            "reset_at": None,
            "enforced": False,
        }
    else:
        rest = {
            "limit": usage.limit,
            "current": usage.current,
            "reset": usage.reset,
            "reset_at": iso(usage.reset_at),
            "enforced": True,
        }
    return {"scopes": {ORG_SCOPE: rest}}
