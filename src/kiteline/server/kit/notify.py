"""Wakes long-polling agent pings the moment a job becomes runnable (in this process).

A ping takes a ticket *before* it looks for work, so a job committed between the look and
the wait still wakes it. Tickets are per event loop, because tests run several servers in
one process. Across replicas the same wake-up travels through PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib


class Ticket:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()


class Notifier:
    def __init__(self) -> None:
        self._current: dict[asyncio.AbstractEventLoop, Ticket] = {}

    def ticket(self) -> Ticket:
        loop = asyncio.get_running_loop()
        current = self._current.get(loop)
        if current is None:
            current = self._current[loop] = Ticket()
        return current

    def notify(self) -> None:
        """Wake every waiter of the running loop (call from inside the loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        current = self._current.pop(loop, None)
        if current is not None:
            current.event.set()

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
