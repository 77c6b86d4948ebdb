"""/v2/user and the User JSON embedded in other objects."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request

from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.tokens.auth import api_transaction
from kiteline.server.users.models import User

router = APIRouter(tags=["user"])


def user_json(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    digest = hashlib.md5(user.email.lower().encode(), usedforsecurity=False).hexdigest()
    return {
        "id": str(user.id),
        "graphql_id": graphql_id("User", user.id),
        "name": user.name,
        "email": user.email,
        "avatar_url": f"https://www.gravatar.com/avatar/{digest}",
        "created_at": iso(user.created_at),
    }


@router.get("/user")
async def get_current_user(request: Request) -> dict[str, Any]:
    async with api_transaction(request, "read_user") as (_session, principal):
        return user_json(principal.user) or {}
