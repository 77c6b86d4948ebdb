"""A job's child processes: own process group, output streamed, cancel with a grace period."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiteline.agent.watchdog import Watchdog

READ_SIZE = 64 * 1024
# After the main process exits, background children may still hold the output pipe open;
# read what they write for this long, then stop waiting for them.
OUTPUT_DRAIN_SECONDS = 2.0

Output = Callable[[bytes], None]


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: `code` uses the shell's 128+N convention for signal deaths."""

    code: int
    signal: str | None = None

    @property
    def passed(self) -> bool:
        return self.code == 0


# What a process that was never started because the job had been cancelled "exits" with.
CANCELLED_BEFORE_START = ExitStatus(code=1)


class ProcessStartError(Exception):
    """The process could not be started at all (missing shell, bad working directory...)."""


class Shell:
    """Runs a job's processes one at a time, writing their output to the job log.

    Setting `cancelled` terminates the running process group (SIGTERM, then SIGKILL after
    `grace_period` seconds); callers check `cancelled` before starting the next process. The
    `watchdog` (when given) kills the group if the agent dies while it runs.
    """

    def __init__(
        self,
        output: Output,
        *,
        cancelled: asyncio.Event,
        grace_period: float,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.output = output
        self.cancelled = cancelled
        self.grace_period = grace_period
        self.watchdog = watchdog

    def say(self, line: str) -> None:
        """Write one agent-generated line (a `~~~` header, a `$ command` prompt) to the log."""
        self.output(line.encode() + b"\n")

    def error(self, message: str) -> None:
        """Write an error line and re-open its log section, as buildkite-agent does."""
        self.say(f"🚨 Error: {message}")
        self.say("^^^ +++")

    def warning(self, message: str) -> None:
        """Write a warning line and re-open its log section, as buildkite-agent does."""
        self.say(f"⚠️ Warning: {message}")
        self.say("^^^ +++")

    async def run(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> ExitStatus:
        if self.cancelled.is_set():
            return CANCELLED_BEFORE_START
        try:
            # Started synchronously (as asyncio does too, inside its transport) so that the
            # watchdog hears of the new group before any other task of the agent runs: an
            # agent killed from then on leaves none of the group's processes behind.
            process = subprocess.Popen(  # noqa: ASYNC220 (see above)
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessStartError(f"could not start {argv[0]!r}: {exc.strerror or exc}") from exc
        if self.watchdog is not None:
            self.watchdog.watch(process.pid)
        try:
            return await self._supervise(process)
        finally:
            if self.watchdog is not None:
                self.watchdog.forget(process.pid)

    async def _supervise(self, process: subprocess.Popen[bytes]) -> ExitStatus:
        assert process.stdout is not None
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=READ_SIZE)
        pipe, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), process.stdout
        )
        reader = asyncio.create_task(self._pump(stream))
        exited = _exit_of(process)
        cancel_requested = asyncio.create_task(self.cancelled.wait())
        try:
            either: set[asyncio.Future[Any]] = {exited, cancel_requested}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self._terminate(process.pid, exited)
            elif self.cancelled.is_set():
                # The leader is gone but some of its group may have ignored SIGTERM.
                _signal_group(process.pid, signal.SIGKILL)
            returncode = await exited
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), OUTPUT_DRAIN_SECONDS)
        finally:
            if process.returncode is None:
                # Only when this coroutine itself is cancelled: leave no job process behind.
                _signal_group(process.pid, signal.SIGKILL)
            for task in (reader, cancel_requested):
                task.cancel()
            await asyncio.gather(reader, cancel_requested, return_exceptions=True)
            pipe.close()
        return exit_status(returncode)

    async def _terminate(self, pid: int, exited: asyncio.Future[int]) -> None:
        _signal_group(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), self.grace_period)
        # Anything left in the group after the grace period (or after the leader) gets SIGKILL.
        _signal_group(pid, signal.SIGKILL)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while data := await stream.read(READ_SIZE):
            self.output(data)


def _exit_of(process: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """The process's return code, once it has exited: waited for in a thread of its own, as
    asyncio's own child watcher does (not the default executor, which a few long jobs would
    fill)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    def settle(code: int) -> None:
        if not exited.done():
            exited.set_result(code)

    def wait() -> None:
        code = process.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, code)

    threading.Thread(target=wait, name=f"wait-{process.pid}", daemon=True).start()
    return exited


def exit_status(returncode: int) -> ExitStatus:
    """Map a Python returncode (negative = killed by signal N) to 128+N plus the signal name."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"SIG{number}"
        return ExitStatus(code=128 + number, signal=name)
    return ExitStatus(code=returncode)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
