"""Work too long for the event loop: pure functions run in a small process pool.

A thread is not enough for YAML: libyaml's parser holds the GIL for the whole document, so a
pipeline of 20,000 steps stopped every request (and every agent's ping) for seconds even
from a thread. A process has its own interpreter; what goes there is pure (`kiteline.pipeline`
only) and its arguments and results are plain data. Small inputs are run inline: a process
round trip costs about a millisecond, parsing a pipeline of a few steps less.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

#: Texts at least this long are parsed in the pool.
LARGE_TEXT = 64 * 1024
POOL_PROCESSES = 2

#: How long a thread running Python keeps the GIL once another thread asks for it (CPython's
#: default: 5 ms). The event loop gives the GIL up at every system call (each socket read and
#: write, each SQLite statement run inline) and must then ask for it back: while a thread
#: works through a large build (its plan, its settle), each of those waits up to the whole
#: interval, and one `/healthz` makes several (decision 0046).
SWITCH_INTERVAL_SECONDS = 0.001

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def hand_over_quickly() -> None:
    """In a server process: threads hand the GIL over after SWITCH_INTERVAL_SECONDS."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # `spawn`: forking a process that runs an event loop and threads copies their
            # locks in whatever state they are; a spawned child imports only what it runs.
            _pool = ProcessPoolExecutor(
                max_workers=POOL_PROCESSES, mp_context=multiprocessing.get_context("spawn")
            )
        return _pool


def _forget(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None


async def in_process(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in the pool (a module-level function, picklable arguments
    and result); a pool whose process died is replaced and the call made once more."""
    loop = asyncio.get_running_loop()
    call = functools.partial(function, *args, **kwargs)
    for attempt in range(2):
        executor = _executor()
        try:
            return await loop.run_in_executor(executor, call)
        except BrokenProcessPool:
            _forget(executor)
            if attempt:
                raise
    raise AssertionError("unreachable")


async def off_loop_if_large(size: int, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """In the pool when `size` (of the text it works on) is at least LARGE_TEXT; else here."""
    if size >= LARGE_TEXT:
        return await in_process(function, *args, **kwargs)
    return function(*args, **kwargs)
