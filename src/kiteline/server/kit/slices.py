"""Long work on the event loop, cut into slices: `pause_if_due()` yields to the loop's other
tasks once the current task step has held it for `SLICE_SECONDS`.

A task holds the loop from one `await` that suspends to the next. Work that never suspends
(statements run inline on SQLite, rendering 20,000 jobs) calls `pause_if_due()` between its
items: the first call of a step notes the time and asks the loop to forget it at its next
turn; a later call past the budget yields once (`asyncio.sleep(0)`), and that turn comes
first. One budget per thread (a thread runs one loop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

#: How long one task step may hold the loop, between pauses, before it yields.
SLICE_SECONDS = 0.01


class _Slice(threading.local):
    started: float | None = None

    def reset(self) -> None:
        self.started = None

    def due(self) -> bool:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
            asyncio.get_running_loop().call_soon(self.reset)  # runs at the loop's next turn
            return False
        return now - self.started >= SLICE_SECONDS


_slice = _Slice()


async def pause_if_due() -> None:
    """Yield to the loop if this task step has held it for SLICE_SECONDS; else nothing."""
    if _slice.due():
        await asyncio.sleep(0)


#: Items dropped between two `pause_if_due()` checks by `release`.
_RELEASED_PER_CHECK = 200


async def release(items: list[Any]) -> None:
    """Empty `items` from its end, a slice at a time, with `pause_if_due()` between slices.
    When a list holds the last references to many objects (a build's 20,000 jobs), letting
    it go frees them all in one piece, tens of milliseconds; this frees them in slices. It
    yields first: what came before may have held the loop without a `pause_if_due()`."""
    if items:
        await asyncio.sleep(0)
    while items:
        await pause_if_due()
        del items[-_RELEASED_PER_CHECK:]
