"""`kiteline server` with its event loop watched: what `bench/responsiveness.py --loop-turns`
runs instead of `python -m kiteline server`.

    python bench/loop_sampler.py OUT.json --port N [--log-level warning]
                                 [--switch-interval SECONDS]

The server is built as `kiteline server` builds it (settings from the environment, the startup
heap frozen). Beside it, on its event loop, a task wakes every 5 ms and notes each turn: when
it ran (`time.monotonic()`, comparable across processes) and how much CPU time the loop's
thread spent since the previous turn (`time.thread_time()`: what the other tasks held the
loop for, which the machine's load does not lengthen), with the wall time between the two and
the time the thread waited for a CPU meanwhile (the kernel's `run_delay`, from
`/proc/self/task/TID/schedstat`): what is left of the wall time, less the 5 ms asked for, the
thread spent blocked, mostly waiting for the GIL while another thread of the process ran.
The garbage collector's passes are noted too (`gc.callbacks`: generation, CPU time, objects
found unreachable, on which thread), and a watchdog thread notes the loop thread's stack every
10 ms of a turn that has taken more than 50 ms of its CPU time (where long turns are spent).
When the server stops (SIGTERM), everything is written to OUT as one JSON document.
`--switch-interval` sets `sys.setswitchinterval` in the server (an experiment's knob).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import threading
import time
from pathlib import Path
from traceback import extract_stack
from typing import Any

#: How often the sampling task asks to be woken.
TICK_SECONDS = 0.005
#: A turn longer than this (the loop thread's CPU time) has its stack noted.
LONG_TURN_SECONDS = 0.05


def _run_delay(schedstat: Path) -> float:
    """Seconds this thread has waited on a run queue (0 where /proc does not say)."""
    try:
        return int(schedstat.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Sampler:
    def __init__(self) -> None:
        #: (monotonic, cpu_s, wall_s, run_delay_s): run_delay is the time waiting for a CPU
        self.turns: list[tuple[float, float, float, float]] = []
        self.collections: list[tuple[float, int, float, int, bool]] = []
        self.stacks: list[tuple[float, float, list[str]]] = []  # (monotonic, cpu in turn, frames)
        self._gc_started = 0.0
        self._loop_thread = threading.get_ident()
        self._turn_cpu = time.thread_time()
        self.long_turn = LONG_TURN_SECONDS

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
            return
        self.collections.append(
            (
                time.monotonic(),
                int(info["generation"]),
                time.thread_time() - self._gc_started,
                int(info["collected"]),
                threading.get_ident() == self._loop_thread,
            )
        )

    async def sample(self) -> None:
        schedstat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        cpu, wall, waited = time.thread_time(), time.monotonic(), _run_delay(schedstat)
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now_cpu, now_wall = time.thread_time(), time.monotonic()
            now_waited = _run_delay(schedstat)
            self.turns.append((now_wall, now_cpu - cpu, now_wall - wall, now_waited - waited))
            cpu, wall, waited = now_cpu, now_wall, now_waited
            self._turn_cpu = now_cpu

    def watch(self) -> None:
        """In its own thread: the loop thread's stack during long turns."""
        clock = time.pthread_getcpuclockid(self._loop_thread)
        while True:
            time.sleep(0.01)
            held = time.clock_gettime(clock) - self._turn_cpu
            if held < self.long_turn:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            frames = [f"{each.filename}:{each.lineno} {each.name}" for each in extract_stack(frame)]
            self.stacks.append((time.monotonic(), held, frames[-30:]))

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"turns": self.turns, "collections": self.collections, "stacks": self.stacks}
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--switch-interval", type=float)
    parser.add_argument("--long-turn", type=float, default=LONG_TURN_SECONDS)
    args = parser.parse_args()

    import uvicorn
    from uvicorn._compat import asyncio_run

    from kiteline.cli.server import SHUTDOWN_GRACE_SECONDS, bind_listener
    from kiteline.server.app import create_app, prepare_serving_process
    from kiteline.settings import Settings

    listener = bind_listener(args.host, args.port)
    app = create_app(Settings(host=args.host, port=args.port))
    prepare_serving_process()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    sampler = Sampler()
    sampler.long_turn = args.long_turn
    gc.callbacks.append(sampler.on_gc)
    threading.Thread(target=sampler.watch, name="loop-watchdog", daemon=True).start()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        sampling = asyncio.create_task(sampler.sample())
        try:
            await server.serve(sockets=[listener])
        finally:
            sampling.cancel()

    def exit_now(signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    # uvicorn handles SIGTERM while it serves, then raises it again for the handler before it
    # (default: die at once): this one lets the turns be written first.
    signal.signal(signal.SIGTERM, exit_now)
    try:
        asyncio_run(serve(), loop_factory=config.get_loop_factory())  # as Server.run does
    finally:
        sampler.write(args.out)


if __name__ == "__main__":
    main()
