"""The garbage collector's full passes, held off while a large build's objects are alive.

A full (generation 2) collection traverses every object the collector tracks, in one piece:
on the event loop's thread it holds the loop, on another it holds the GIL. CPython starts one
whenever the objects that survived the younger collections have grown by a quarter since the
last, so while a build of 20,000 jobs was planned, written and rendered (hundreds of
thousands of dicts, lists, rows and ORM objects) it made a dozen, up to 0.2-0.45 s of CPU each,
and they were the longest waits of `/healthz` (docs/reliability.md, decision 0038).

`Hold` around such work puts the third threshold out of reach while any hold is engaged and
for `LINGER_SECONDS` after the last one ends (the gaps between one phase of the work and the
next). Young collections (generations 0 and 1) still run, so garbage without cycles and
young cycles are freed as before; the full passes resume once the holds lapse, over what is
still alive then (by then the build's objects are mostly freed, by reference counting).
Held longer than `MAX_HOLD_SECONDS` in a row (a server creating large builds without pause:
one of 20,000 jobs took 51 s at a load average of 10), one full collection is let through,
so cyclic garbage can't pile up without end.
"""

from __future__ import annotations

import gc
import threading
import time
from types import TracebackType
from typing import Any

#: How long full collections stay held off after the last hold ends.
LINGER_SECONDS = 5.0
#: Held off this long in a row, one full collection is let through.
MAX_HOLD_SECONDS = 300.0
#: The third threshold while held: more younger collections than a process ever makes.
_OUT_OF_REACH = 2**31 - 1


class _Deferral:
    """The process's one deferral (the collector's thresholds are the process's)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.engaged = 0
        self.since = 0.0
        self.until = 0.0
        self.restored_third: int | None = None
        self._watching = False

    def engage(self) -> None:
        with self._lock:
            self.engaged += 1
            if self.restored_third is None:
                first, second, third = gc.get_threshold()
                self.restored_third = third
                self.since = time.monotonic()
                gc.set_threshold(first, second, _OUT_OF_REACH)
            if not self._watching:
                # Stays installed: removing a callback while the collector calls them
                # would skip the next one's call.
                gc.callbacks.append(self._on_collection)
                self._watching = True

    def release(self) -> None:
        with self._lock:
            self.until = time.monotonic() + LINGER_SECONDS  # before the count: see below
            self.engaged -= 1

    def _on_collection(self, phase: str, _info: dict[str, Any]) -> None:
        # Called at every collection, on whichever thread allocated; cheap when not held.
        if phase != "start" or self.restored_third is None:
            return
        now = time.monotonic()
        lapsed = self.engaged == 0 and now >= self.until
        if lapsed or now - self.since >= MAX_HOLD_SECONDS:
            self.restore()

    def restore(self) -> None:
        with self._lock:
            if self.restored_third is None:
                return
            first, second, _ = gc.get_threshold()
            gc.set_threshold(first, second, self.restored_third)
            self.restored_third = None


_deferral = _Deferral()


class Hold:
    """Full collections held off while this is engaged (and `LINGER_SECONDS` after).

        with Hold(engaged=len(planned) >= LARGE) as hold:
            ...
            hold.engage()  # once the work turns out large

    `engage()` is idempotent; the hold ends when the `with` block does.
    """

    def __init__(self, *, engaged: bool = False) -> None:
        self._engaged = False
        if engaged:
            self.engage()

    def engage(self) -> None:
        if not self._engaged:
            _deferral.engage()
            self._engaged = True

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._engaged:
            self._engaged = False
            _deferral.release()


def full_collections_held() -> bool:
    """Whether full collections are held off now."""
    return _deferral.restored_third is not None
