"""GraphQL complexity budgets: points per organization per fixed window, in `limits` storage.

The storage is REST's (memory, or Redis shared by every replica); the keys are GraphQL's own.
A request spends from the budget of each organization it reads or changes, or, when it touches
none, from its caller's default bucket (their organization when they belong to exactly one, else
their own). An organization already at its limit refuses the request before anything runs;
the request that crosses the limit is still served, and charged what it actually cost.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.errors import StorageError

log = logging.getLogger("kiteline.server")

SCOPE = "graphql"


@dataclass(frozen=True)
class WindowUsage:
    """One bucket's window as a request left it."""

    limit: int
    current: int
    reset: int  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.current)

    @property
    def exhausted(self) -> bool:
        return self.current >= self.limit

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Reset": str(self.reset),
        }

    def refusal(self) -> str:
        return (
            f"Your organization has exceeded the limit of {self.limit} complexity points. "
            f"Please try again in {self.reset} seconds."
        )


class BudgetExhausted(Exception):
    """Raised inside a request whose organization has no points left: the request answers 429."""

    def __init__(self, usage: WindowUsage) -> None:
        super().__init__(usage.refusal())
        self.usage = usage


class ComplexityBudget:
    """`per_window` points per bucket in fixed windows of `window_seconds`."""

    def __init__(self, storage: Storage, *, per_window: int, window_seconds: int) -> None:
        self.storage = storage
        self.item = RateLimitItemPerSecond(per_window, window_seconds)
        self.window_seconds = window_seconds

    def _key(self, bucket: str) -> str:
        return self.item.key_for(SCOPE, bucket)

    async def _usage(self, key: str, current: int) -> WindowUsage:
        if current == 0:
            return WindowUsage(self.item.amount, 0, self.window_seconds)
        reset_at = await self.storage.get_expiry(key)
        return WindowUsage(self.item.amount, current, max(0, math.ceil(reset_at - time.time())))

    async def usage(self, bucket: str) -> WindowUsage:
        key = self._key(bucket)
        return await self._usage(key, await self.storage.get(key))

    async def spend(self, bucket: str, points: int) -> WindowUsage:
        if points <= 0:
            return await self.usage(bucket)
        key = self._key(bucket)
        current = await self.storage.incr(key, self.item.get_expiry(), amount=points)
        return await self._usage(key, current)


def organization_bucket(organization_id: uuid.UUID) -> str:
    return f"org:{organization_id}"


class BudgetGate:
    """The buckets one request spends from, checked as the request first touches each."""

    def __init__(self, budget: ComplexityBudget | None, default_bucket: str) -> None:
        self.budget = budget
        self.default_bucket = default_bucket
        self.entered: dict[str, WindowUsage | None] = {}
        #: The organizations entered, in order (budget or not): what a kept answer replays.
        self.reached: list[uuid.UUID] = []

    async def _enter(self, bucket: str) -> None:
        if self.budget is None or bucket in self.entered:
            return
        try:
            usage = await self.budget.usage(bucket)
        except StorageError:
            # Redis being down should not take the API down with it (as for REST).
            log.warning("rate limit storage unavailable; request not counted", exc_info=True)
            self.entered[bucket] = None
            return
        self.entered[bucket] = usage
        if usage.exhausted:
            raise BudgetExhausted(usage)

    async def enter_organization(self, organization_id: uuid.UUID) -> None:
        if organization_id not in self.reached:
            self.reached.append(organization_id)
        await self._enter(organization_bucket(organization_id))

    async def enter_default(self) -> None:
        """A request that touched no organization spends from its caller's default bucket."""
        if not self.entered:
            await self._enter(self.default_bucket)

    async def peek(self) -> WindowUsage | None:
        """The default bucket as it stands, for answers to queries that did not run."""
        if self.budget is None:
            return None
        try:
            return await self.budget.usage(self.default_bucket)
        except StorageError:
            log.warning("rate limit storage unavailable", exc_info=True)
            return None

    async def charge(self, points: int) -> WindowUsage | None:
        """Spend `points` from every bucket entered; the tightest one is what headers show."""
        if self.budget is None:
            return None
        usages = []
        for bucket in self.entered or [self.default_bucket]:
            try:
                usages.append(await self.budget.spend(bucket, points))
            except StorageError:
                log.warning("rate limit storage unavailable; request not counted", exc_info=True)
        return min(usages, key=lambda usage: usage.remaining, default=None)
