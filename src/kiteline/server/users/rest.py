"""/v2/user; the User JSON is `shapes`'."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from kiteline.server.tokens.auth import api_transaction
from kiteline.server.users.shapes import user_json

router = APIRouter(tags=["user"])


@router.get("/user")
async def get_current_user(request: Request) -> dict[str, Any]:
    async with api_transaction(request, "read_user") as (_session, principal):
        return user_json(principal.user) or {}
