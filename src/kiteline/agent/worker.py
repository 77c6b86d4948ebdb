"""One registered agent: register, connect, heartbeat, ping for work, run jobs, disconnect."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import platform
import random
from collections.abc import Awaitable
from typing import TypeVar

import httpx

from kiteline.agent.api import AgentApi, ApiError, Ping, RegisterRequest, Session, go_arch
from kiteline.agent.config import AgentConfig
from kiteline.agent.job_runner import SIGNAL_REASON_AGENT_STOP, JobRunner
from kiteline.agent.watchdog import Watchdog

log = logging.getLogger("kiteline.agent")

T = TypeVar("T")

# After a failed ping: 1, 2, 4 … 30 s, each scaled by a random factor in [0.5, 1).
PING_BACKOFF_FIRST_SECONDS = 1.0
PING_BACKOFF_MAX_SECONDS = 30.0


def ping_backoff(consecutive_failures: int) -> float:
    delay = PING_BACKOFF_FIRST_SECONDS * 2 ** (consecutive_failures - 1)
    return min(PING_BACKOFF_MAX_SECONDS, delay) * random.uniform(0.5, 1.0)


def os_version_dump() -> str:
    """What buildkite-agent sends as `os` on Linux: the `/etc/*-release` files' contents."""
    dump = ""
    for path in sorted(glob.glob("/etc/*-release")):
        with contextlib.suppress(OSError), open(path) as release:
            dump += release.read()
    return dump or platform.platform()


class AgentWorker:
    """Agent number `index` of a pool. `run` returns False when it stopped on an error."""

    def __init__(self, config: AgentConfig, index: int) -> None:
        self.config = config
        self.name = config.worker_name(index)
        self._stopping = asyncio.Event()
        self._forced = False
        self._job: JobRunner | None = None
        self._failed = False
        self._watchdog: Watchdog | None = None

    def stop(self, *, force: bool = False) -> None:
        """Graceful: finish the current job, then disconnect. Forced: cancel it first."""
        self._stopping.set()
        if force:
            self._forced = True
            if self._job:
                self._job.cancel(SIGNAL_REASON_AGENT_STOP)

    async def run(self, http: httpx.AsyncClient, watchdog: Watchdog | None = None) -> bool:
        self._watchdog = watchdog
        api = AgentApi(http, Session(self.config.endpoint), self.config.token)
        request = RegisterRequest(
            name=self.name,
            hostname=self.config.hostname,
            os=os_version_dump(),
            arch=go_arch(),
            meta_data=self.config.meta_data,
            pid=os.getpid(),
        )
        try:
            registration = await self._unless_stopping(api.register(request))
            if registration is None:
                return True
            self.name = registration.name or self.name
            api = api.with_token(registration.access_token)
            log.info("%s registered (id %s)", self.name, registration.id)
            await self._unless_stopping(api.connect())
        except ApiError as exc:
            log.error("%s could not register and connect: %s", self.name, exc)
            return False
        heartbeats = asyncio.create_task(
            self._send_heartbeats(api, registration.heartbeat_interval)
        )
        try:
            if not self._stopping.is_set():
                log.info("%s connected to %s", self.name, api.session.endpoint)
                await self._ping_loop(
                    api,
                    ping_interval=registration.ping_interval,
                    job_status_interval=registration.job_status_interval,
                )
        finally:
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
            try:
                await api.disconnect()
                log.info("%s disconnected", self.name)
            except ApiError as exc:
                log.warning("%s could not disconnect: %s", self.name, exc)
        return not self._failed

    async def _ping_loop(
        self, api: AgentApi, *, ping_interval: float, job_status_interval: float
    ) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            asked_at = loop.time()
            try:
                ping = await self._unless_stopping(self._ping(api))
            except ApiError as exc:
                if not exc.retryable:
                    log.error("%s ping rejected, stopping: %s", self.name, exc)
                    self._failed = True
                    return
                failures += 1
                delay = ping_backoff(failures)
                log.warning("%s ping failed, retrying in %.1fs: %s", self.name, delay, exc)
                await self._unless_stopping(asyncio.sleep(delay))
                continue
            if ping is None:
                return
            failures = 0
            if ping.message:
                log.info("%s: %s", self.name, ping.message)
            if ping.action == "disconnect":
                log.info("%s told to disconnect", self.name)
                return
            if ping.job and ping.action != "pause":
                await self._run_job(api, ping.job.id, job_status_interval)
                continue
            # A long-polling server held the ping for its whole wait: ask again at once.
            # Otherwise keep to the server's ping interval, as buildkite-agent does.
            elapsed = loop.time() - asked_at
            if elapsed < ping_interval:
                await self._unless_stopping(asyncio.sleep(ping_interval - elapsed))

    async def _ping(self, api: AgentApi) -> Ping:
        ping = await api.ping(wait=self.config.ping_wait)
        new_endpoint = ping.endpoint
        if not new_endpoint or new_endpoint == api.session.endpoint:
            return ping
        # Switch only once the new endpoint has answered a ping.
        try:
            ping = await api.ping(wait=0, endpoint=new_endpoint)
        except ApiError as exc:
            log.warning(
                "%s keeps %s: %s did not answer: %s",
                self.name,
                api.session.endpoint,
                new_endpoint,
                exc,
            )
            return ping
        log.info("%s switching endpoint to %s", self.name, new_endpoint)
        api.session.endpoint = new_endpoint
        return ping

    async def _run_job(self, api: AgentApi, job_id: str, job_status_interval: float) -> None:
        try:
            job = await api.accept_job(job_id)
        except ApiError as exc:
            log.warning("%s could not accept job %s, abandoning it: %s", self.name, job_id, exc)
            return
        log.info("%s accepted job %s", self.name, job.id)
        self._job = JobRunner(
            api,
            job,
            config=self.config,
            agent_name=self.name,
            job_status_interval=job_status_interval,
            watchdog=self._watchdog,
        )
        if self._forced:
            self._job.cancel(SIGNAL_REASON_AGENT_STOP)
        try:
            await self._job.run()
        finally:
            self._job = None

    async def _send_heartbeats(self, api: AgentApi, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await api.heartbeat()
            except ApiError as exc:
                if exc.retryable:
                    log.warning("%s heartbeat failed: %s", self.name, exc)
                    continue
                log.error("%s heartbeat rejected, stopping: %s", self.name, exc)
                self._failed = True
                self.stop(force=True)
                return

    async def _unless_stopping(self, awaitable: Awaitable[T]) -> T | None:
        """Await `awaitable`, abandoning it (None) if the worker is asked to stop meanwhile."""
        work = asyncio.ensure_future(awaitable)
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, stopping, return_exceptions=True)
        return work.result() if not work.cancelled() else None
