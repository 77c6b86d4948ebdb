"""REST rate limits: Buildkite's per-organization and per-user budgets, and their headers."""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio
from fastapi import FastAPI, Request
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiteline.server.kit.errors import KitelineError
from kiteline.settings import Settings

ORG_SCOPE = "rest"
USER_SCOPE = "rest_user"
EXCEEDED = "You have exceeded your API rate limit."
_USAGES = "rate_limit_usages"  # request.state attribute read back by RateLimitHeaders

log = logging.getLogger("kiteline.server")


@dataclass(frozen=True)
class Usage:
    """One budget as the current request left it."""

    scope: str
    limit: int
    current: int
    reset: int  # seconds until the window ends and `current` starts again from zero
    reset_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.current)

    @property
    def exceeded(self) -> bool:
        return self.current > self.limit

    def headers(self) -> dict[str, str]:
        prefix = "RateLimit-User-" if self.scope == USER_SCOPE else "RateLimit-"
        headers = {
            f"{prefix}Scope": self.scope,
            f"{prefix}Remaining": str(self.remaining),
            f"{prefix}Limit": str(self.limit),
            f"{prefix}Reset": str(self.reset),
        }
        if self.exceeded:
            headers[f"{prefix}Warning"] = EXCEEDED
        return headers


class RateLimited(KitelineError):
    status = 429

    def __init__(self, usage: Usage) -> None:
        super().__init__(
            f"{EXCEEDED} Please wait {usage.reset} seconds before making more requests."
        )
        self.usage = usage

    def body(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "message": self.message,
            "scope": usage.scope,
            "limit": usage.limit,
            "current": usage.current,
            "reset": usage.reset,
        }


class Budget:
    """`per_minute` requests per bucket in fixed one-minute windows kept in `limits` storage."""

    def __init__(self, storage: Storage, scope: str, per_minute: int) -> None:
        self.storage = storage
        self.scope = scope
        self.item = RateLimitItemPerMinute(per_minute)

    async def spend(self, bucket: str) -> Usage:
        # What limits' FixedWindowRateLimiter.hit does (same key, same counter), keeping the
        # count it throws away: the 429 body and the status endpoint report it.
        key = self.item.key_for(self.scope, bucket)
        current = await self.storage.incr(key, self.item.get_expiry())
        reset_at = await self.storage.get_expiry(key)
        return Usage(
            scope=self.scope,
            limit=self.item.amount,
            current=current,
            reset=max(0, math.ceil(reset_at - time.time())),
            reset_at=datetime.fromtimestamp(reset_at, UTC),
        )


class RateLimiter:
    """The organization budget and the user budget; a limit of 0 turns one off."""

    def __init__(
        self,
        storage: Storage,
        *,
        org_per_minute: int,
        user_per_minute: int,
        redis_pool: redis.asyncio.ConnectionPool | None = None,
    ) -> None:
        self.storage = storage  # also GraphQL's complexity budgets
        self.org = Budget(storage, ORG_SCOPE, org_per_minute) if org_per_minute else None
        self.user = Budget(storage, USER_SCOPE, user_per_minute) if user_per_minute else None
        self.redis_pool = redis_pool

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        storage: Storage = MemoryStorage()
        pool = None
        if settings.redis_url:
            # Our own pool, so that shutdown can close its connections (limits has no close).
            pool = redis.asyncio.ConnectionPool.from_url(settings.redis_url)
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix="kiteline",
                wrap_exceptions=True,
                connection_pool=pool,  # type: ignore[arg-type]  # handed to redis.asyncio.Redis
            )
        return cls(
            storage,
            org_per_minute=settings.rate_limit_org_per_minute,
            user_per_minute=settings.rate_limit_user_per_minute,
            redis_pool=pool,
        )

    async def spend(self, *, org: str | None, user_id: uuid.UUID) -> list[Usage]:
        """Count one request; paths without an organization spend from the user's own bucket."""
        usages = []
        if self.org is not None:
            usages.append(await self.org.spend(f"org:{org}" if org else f"user:{user_id}"))
        if self.user is not None:
            usages.append(await self.user.spend(f"user:{user_id}"))
        return usages

    async def aclose(self) -> None:
        if self.redis_pool is not None:
            await self.redis_pool.aclose()


async def enforce_rate_limits(request: Request, user_id: uuid.UUID) -> None:
    """Count an authenticated REST request; 429 before its endpoint runs if a budget is spent."""
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        usages = await limiter.spend(org=request.path_params.get("org"), user_id=user_id)
    except StorageError:
        # Redis being down should not take the whole API down with it.
        log.warning("rate limit storage unavailable; request not counted", exc_info=True)
        return
    setattr(request.state, _USAGES, usages)
    for usage in usages:
        if usage.exceeded:
            raise RateLimited(usage)


def recorded_usage(request: Request, scope: str) -> Usage | None:
    """The `scope` budget as `enforce_rate_limits` left it for this request, if it counted."""
    usages: list[Usage] = getattr(request.state, _USAGES, [])
    return next((usage for usage in usages if usage.scope == scope), None)


class RateLimitHeaders:
    """ASGI middleware: the counted budgets' RateLimit-* headers on every response, errors too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for usage in scope.get("state", {}).get(_USAGES, []):
                    for name, value in usage.headers().items():
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.add_middleware(RateLimitHeaders)
