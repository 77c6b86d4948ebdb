"""The User JSON that REST, webhooks and the other domains' objects embed."""

from __future__ import annotations

import hashlib
from typing import Any

from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.users.models import User


def avatar_url(email: str) -> str:
    """A Gravatar of the email, for users with or without an account."""
    digest = hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}"


def user_json(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": str(user.id),
        "graphql_id": graphql_id("User", user.id),
        "name": user.name,
        "email": user.email,
        "avatar_url": avatar_url(user.email),
        "created_at": iso(user.created_at),
    }
