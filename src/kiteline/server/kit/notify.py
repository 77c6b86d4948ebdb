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
    local wake-ups are sent to them, for each notifier.

    When the connection drops (PostgreSQL restarted, the backend terminated, a failover), the
    relay reconnects with a growing pause and, once listening again, wakes its own waiters and
    every other replica's: NOTIFYs sent while it was away are lost, and a wake-up only says
    "look again", so one extra look on each side makes up for them."""

    RECONNECT_FIRST_PAUSE = 0.2
    RECONNECT_LONGEST_PAUSE = 5.0

    def __init__(self, dsn: str, notifiers: tuple[Notifier, ...] = (dispatch, outbox)) -> None:
        self._dsn = dsn
        self._connection: Any = None
        self._notifiers = {notifier.channel: notifier for notifier in notifiers}
        self._wanted: set[str] = set()
        self._sending = False
        self._stopping = False
        self._reconnecting: asyncio.Task[None] | None = None
        #: How many times the connection was opened again after a drop (for tests and logs).
        self.reconnects = 0

    async def start(self) -> None:
        await self._listen()
        for channel, notifier in self._notifiers.items():
            notifier.set_broadcaster(functools.partial(self._send, channel))

    async def _listen(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._dsn)
        try:
            for channel in self._notifiers:
                await connection.add_listener(channel, self._received)
        except BaseException:
            connection.terminate()
            raise
        connection.add_termination_listener(self._lost)
        self._connection = connection

    def _lost(self, _connection: object) -> None:
        if self._stopping or self._reconnecting is not None:
            return
        log.warning("lost the connection that carries wake-ups between replicas; reconnecting")
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        pause = self.RECONNECT_FIRST_PAUSE
        try:
            while not self._stopping:
                await asyncio.sleep(pause)
                try:
                    await self._listen()
                except Exception as error:  # PostgreSQL still away: try again, a bit later
                    log.warning("could not reconnect the wake-up relay (%s); retrying", error)
                    pause = min(pause * 2, self.RECONNECT_LONGEST_PAUSE)
                    continue
                self.reconnects += 1
                log.info("wake-up relay reconnected")
                break
        finally:
            self._reconnecting = None
        if self._stopping:
            return
        for channel, notifier in self._notifiers.items():
            notifier.wake_local()
            await self._send(channel)

    def _received(self, _connection: object, _pid: object, channel: str, _payload: object) -> None:
        notifier = self._notifiers.get(channel)
        if notifier is not None:
            notifier.wake_local()

    async def _send(self, channel: str = CHANNEL) -> None:
        """NOTIFY the other replicas. One connection runs one statement at a time, so wake-ups
        asked for while one is being sent are folded into one per channel sent after it: a
        wake-up only has to follow the latest commit. While the connection is down nothing is
        sent: the reconnect sends every channel once."""
        self._wanted.add(channel)
        if self._sending:
            return
        self._sending = True
        try:
            while self._wanted:
                wanted = sorted(self._wanted)
                self._wanted.clear()
                connection = self._connection
                if connection is None or connection.is_closed():
                    break
                try:
                    await connection.execute("; ".join(f"NOTIFY {c}" for c in wanted))
                except Exception:  # a lost relay only slows other replicas to their next check
                    log.warning("could not send wake-ups to other replicas", exc_info=True)
        finally:
            self._sending = False

    async def stop(self) -> None:
        self._stopping = True
        for notifier in self._notifiers.values():
            notifier.set_broadcaster(None)
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
