"""/v2/access-token: what the caller's token is, and revoking it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kiteline.server.kit.timefmt import iso
from kiteline.server.tokens import service
from kiteline.server.tokens.auth import api_transaction

router = APIRouter(tags=["access-token"])


@router.get("/access-token")
async def get_access_token(request: Request) -> dict[str, Any]:
    async with api_transaction(request, None) as (_session, principal):
        token = principal.token
        return {
            "uuid": str(token.id),
            "scopes": list(token.scopes),
            "description": token.description,
            "created_at": iso(token.created_at),
            "expires_at": iso(token.expires_at),
            "user": {"name": principal.user.name, "email": principal.user.email},
        }


@router.delete("/access-token", status_code=204)
async def revoke_access_token(request: Request) -> Response:
    async with api_transaction(request, None) as (session, principal):
        await service.revoke_api_token(session, principal.token.id)
    return Response(status_code=204)
