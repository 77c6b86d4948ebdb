"""Run a coroutine to completion from synchronous test code, even where Playwright's
synchronous API keeps an event loop running in the test's thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(coroutine())` in a thread of its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine())).result()
