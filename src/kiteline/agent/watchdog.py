"""Job processes die with their agent: a watchdog process kills them when the agent is gone.

Each job process runs in a session (and process group) of its own, so that a cancel can stop
it and all its children, and so that a Ctrl-C meant for the agent does not reach it. A
SIGKILLed agent (or one killed by the OOM killer) stops nothing, though: its jobs' processes
would run on, orphaned. So the agent starts one watchdog, `python -m kiteline.agent.watchdog
GRACE`, in a session of its own too (a signal to the agent's process group does not reach
it), and tells it through a pipe which process groups are running (`+PGID`) and which have
ended (`-PGID`). The agent alone holds the pipe's writing end: when the agent is gone,
however it went, the watchdog reads the end of the pipe, sends SIGTERM to every group still
registered, and SIGKILL after GRACE seconds to what is left, as a cancel does.

The agent registers a group right after its fork, before anything else runs in the agent
(`Shell.run` starts processes synchronously for that reason). An agent killed in the few
microseconds between the two would leave that one group behind; a job process that starts
a session of its own (`setsid`) escapes too, as it escapes a cancel.
Linux and macOS alike: nothing here is specific to one kernel (unlike PR_SET_PDEATHSIG,
which would also reach only the first process, not the processes it starts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable

log = logging.getLogger("kiteline.agent")

#: How often the watchdog looks whether the groups it signalled are gone.
POLL_SECONDS = 0.1


class Watchdog:
    """The agent's end of its watchdog: `watch`/`forget` a process group; `close` when done."""

    def __init__(self, process: subprocess.Popen[bytes], pipe: int) -> None:
        self._process = process
        self._pipe: int | None = pipe
        self.pid = process.pid

    @classmethod
    def start(cls, grace_period: float) -> Watchdog:
        read_end, write_end = os.pipe()  # neither is inherited by the agent's other children
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "kiteline.agent.watchdog", str(grace_period)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """The agent stops on its own: the watchdog ends, killing only groups still watched."""
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)

    def _send(self, line: str) -> None:
        if self._pipe is None:
            return
        try:
            os.write(self._pipe, line.encode())
        except OSError as exc:
            log.error("the job watchdog is gone (%s): job processes may outlive the agent", exc)
            os.close(self._pipe)
            self._pipe = None


def end_groups(groups: Iterable[int], grace_period: float) -> None:
    """SIGTERM to each group, then SIGKILL to those still there after `grace_period`."""
    alive = {group for group in groups if _signal(group, signal.SIGTERM)}
    deadline = time.monotonic() + grace_period
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        alive = {group for group in alive if _signal(group, 0)}
    for group in alive:
        _signal(group, signal.SIGKILL)


def _signal(group: int, sig: int) -> bool:
    """Send `sig` to the group (0: only look); False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main(argv: list[str]) -> None:
    grace_period = float(argv[0]) if argv else 0.0
    groups: set[int] = set()
    for line in sys.stdin.buffer:  # until the agent's end of the pipe is closed
        text = line.strip()
        if not text[1:].isdigit():
            continue
        if text.startswith(b"+"):
            groups.add(int(text[1:]))
        elif text.startswith(b"-"):
            groups.discard(int(text[1:]))
    end_groups(groups, grace_period)


if __name__ == "__main__":
    main(sys.argv[1:])
