"""Wakes long-polling agent pings the moment a job becomes runnable, in this process and, on
PostgreSQL, in every other replica (LISTEN/NOTIFY).

A ping takes a ticket *before* it looks for work, so a job committed between the look and
the wait still wakes it. Tickets are per event loop, because tests run several servers in
one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("kiteline.notify")

CHANNEL = "kiteline_dispatch"


class Ticket:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()


class Notifier:
    def __init__(self) -> None:
        self._current: dict[asyncio.AbstractEventLoop, Ticket] = {}
        self._broadcasters: dict[
            asyncio.AbstractEventLoop, Callable[[], Coroutine[Any, Any, None]]
        ] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def ticket(self) -> Ticket:
        loop = asyncio.get_running_loop()
        current = self._current.get(loop)
        if current is None:
            current = self._current[loop] = Ticket()
        return current

    def wake_local(self) -> None:
        """Wake every waiter of the running loop (call from inside the loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        current = self._current.pop(loop, None)
        if current is not None:
            current.event.set()

    def notify(self) -> None:
        """Wake waiters here and tell the other replicas (after a commit)."""
        self.wake_local()
        with contextlib.suppress(RuntimeError):
            broadcast = self._broadcasters.get(asyncio.get_running_loop())
            if broadcast is not None:
                task = asyncio.get_running_loop().create_task(broadcast())
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    def set_broadcaster(self, broadcast: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
        loop = asyncio.get_running_loop()
        if broadcast is None:
            self._broadcasters.pop(loop, None)
        else:
            self._broadcasters[loop] = broadcast

    async def wait(self, ticket: Ticket, seconds: float) -> bool:
        """True when woken, False when `seconds` passed first."""
        if seconds <= 0:
            return ticket.event.is_set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await ticket.event.wait()
        return ticket.event.is_set()


#: Signalled after any commit that made a job runnable or changed what an agent should do.
dispatch = Notifier()


class PostgresRelay:
    """One LISTEN connection per process: NOTIFYs from other replicas wake local pings, and
    local wake-ups are sent to them."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: Any = None
        self._wanted = False
        self._sending = False

    async def start(self) -> None:
        import asyncpg

        self._connection = await asyncpg.connect(self._dsn)
        await self._connection.add_listener(CHANNEL, self._received)
        dispatch.set_broadcaster(self._send)

    def _received(self, *_args: object) -> None:
        dispatch.wake_local()

    async def _send(self) -> None:
        """NOTIFY the other replicas. One connection runs one statement at a time, so wake-ups
        asked for while one is being sent are folded into a single one sent after it: a
        wake-up only has to follow the latest commit."""
        self._wanted = True
        if self._sending:
            return
        self._sending = True
        try:
            while self._wanted:
                self._wanted = False
                try:
                    await self._connection.execute(f"NOTIFY {CHANNEL}")
                except Exception:  # a lost relay only slows other replicas to their next check
                    log.warning(
                        "could not send the dispatch wake-up to other replicas", exc_info=True
                    )
        finally:
            self._sending = False

    async def stop(self) -> None:
        dispatch.set_broadcaster(None)
        if self._connection is not None:
            await self._connection.close()
