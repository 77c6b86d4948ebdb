"""The agent process: `spawn` workers registered separately, run in parallel, stopped together."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx

from kiteline.agent.config import AgentConfig
from kiteline.agent.shims import prepare_shims
from kiteline.agent.watchdog import Watchdog
from kiteline.agent.worker import AgentWorker

log = logging.getLogger("kiteline.agent")


class AgentPool:
    """`await pool.run()` until every worker has stopped; `stop` asks them to.

    `run` returns 0 when every worker stopped cleanly (graceful stop, ping `disconnect`) and 1
    when any stopped on an error (registration refused, ping or heartbeat rejected).
    """

    def __init__(self, config: AgentConfig) -> None:
        if config.spawn < 1:
            raise ValueError(f"spawn must be at least 1, got {config.spawn}")
        self.config = config
        self.workers = [AgentWorker(config, index) for index in range(1, config.spawn + 1)]

    def stop(self, *, force: bool = False) -> None:
        for worker in self.workers:
            worker.stop(force=force)

    async def run(self) -> int:
        prepare_shims(self.config.resolved_bin_path)
        # Every worker holds a long-polling ping open, so the pool must allow one connection
        # per worker beyond the job calls.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=2 * len(self.workers))
        # Kills the jobs' processes should this process die without stopping them.
        watchdog = Watchdog.start(self.config.cancel_grace_period)
        try:
            async with httpx.AsyncClient(limits=limits) as http:
                results = await asyncio.gather(
                    *(worker.run(http, watchdog) for worker in self.workers)
                )
        finally:
            await asyncio.to_thread(watchdog.close)
        return 0 if all(results) else 1


async def run_agent(config: AgentConfig, *, handle_signals: bool = True) -> int:
    """Run an agent pool until it stops; the exit code for `kiteline agent start`.

    With `handle_signals`, the first SIGTERM/SIGINT stops gracefully (running jobs finish) and
    the second cancels running jobs (`signal_reason: agent_stop`).
    """
    pool = AgentPool(config)
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) == 1:
            log.info("%s received: finishing running jobs, then disconnecting", sig.name)
            pool.stop()
        else:
            log.info("%s received again: cancelling running jobs", sig.name)
            pool.stop(force=True)

    handled = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await pool.run()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
