"""Wake-ups after a commit, in this process and, on PostgreSQL, in every other replica
(LISTEN/NOTIFY): `dispatch` wakes long-polling agent pings the moment a job becomes runnable;
`outbox` wakes the readers of the events outbox that feed live web pages.

A wake-up carries nothing: it says "look again", and the reader finds what changed in the
database. A waiter takes a ticket *before* it looks, so a commit between the look and the
wait still wakes it. Tickets are per event loop, because tests run several servers in one
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("kiteline.notify")


class Ticket:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()


class Notifier:
    def __init__(self, channel: str) -> None:
        self.channel = channel  # the PostgreSQL NOTIFY channel that carries it to replicas
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
dispatch = Notifier("kiteline_dispatch")
#: Signalled after any commit that wrote events to the outbox (live web pages read them).
outbox = Notifier("kiteline_outbox")

CHANNEL = dispatch.channel


class PostgresRelay:
    """One LISTEN connection per process: NOTIFYs from other replicas wake local waiters, and
    local wake-ups are sent to them, for each notifier."""

    def __init__(self, dsn: str, notifiers: tuple[Notifier, ...] = (dispatch, outbox)) -> None:
        self._dsn = dsn
        self._connection: Any = None
        self._notifiers = {notifier.channel: notifier for notifier in notifiers}
        self._wanted: set[str] = set()
        self._sending = False

    async def start(self) -> None:
        import asyncpg

        self._connection = await asyncpg.connect(self._dsn)
        for channel, notifier in self._notifiers.items():
            await self._connection.add_listener(channel, self._received)
            notifier.set_broadcaster(functools.partial(self._send, channel))

    def _received(self, _connection: object, _pid: object, channel: str, _payload: object) -> None:
        notifier = self._notifiers.get(channel)
        if notifier is not None:
            notifier.wake_local()

    async def _send(self, channel: str = CHANNEL) -> None:
        """NOTIFY the other replicas. One connection runs one statement at a time, so wake-ups
        asked for while one is being sent are folded into one per channel sent after it: a
        wake-up only has to follow the latest commit."""
        self._wanted.add(channel)
        if self._sending:
            return
        self._sending = True
        try:
            while self._wanted:
                wanted = sorted(self._wanted)
                self._wanted.clear()
                try:
                    await self._connection.execute("; ".join(f"NOTIFY {c}" for c in wanted))
                except Exception:  # a lost relay only slows other replicas to their next check
                    log.warning("could not send wake-ups to other replicas", exc_info=True)
        finally:
            self._sending = False

    async def stop(self) -> None:
        for notifier in self._notifiers.values():
            notifier.set_broadcaster(None)
        if self._connection is not None:
            await self._connection.close()
