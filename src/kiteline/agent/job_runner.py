"""One accepted job against the server: start, stream the log, watch for cancel, finish."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from functools import partial

from kiteline.agent.api import AgentApi, ApiError, Job, JobFinish, utc_timestamp
from kiteline.agent.config import AgentConfig
from kiteline.agent.executor import HookSettings, JobExecutor
from kiteline.agent.job_env import checkout_path, job_environment, request_header_env
from kiteline.agent.log_streamer import LogStreamer
from kiteline.agent.process import ExitStatus, Shell
from kiteline.agent.redactor import Redactor
from kiteline.agent.watchdog import Watchdog

log = logging.getLogger("kiteline.agent")

CANCEL_STATES = frozenset({"canceling", "canceled", "timing_out", "timed_out"})
#: The server closed the job without this agent (it took the agent for lost, or the job
#: expired): nobody wants its result any more, and its log and finish would be refused.
CLOSED_STATES = frozenset({"finished", "expired"})
SIGNAL_REASON_CANCEL = "cancel"
SIGNAL_REASON_AGENT_STOP = "agent_stop"
SIGNAL_REASON_PROCESS_RUN_ERROR = "process_run_error"
AGENT_FAILURE = ExitStatus(code=-1)


@dataclass(frozen=True)
class JobOutcome:
    status: ExitStatus
    signal_reason: str | None = None


class JobRunner:
    """Runs `job` for the agent named `agent_name`; `cancel` may be called from anywhere."""

    def __init__(
        self,
        api: AgentApi,
        job: Job,
        *,
        config: AgentConfig,
        agent_name: str,
        job_status_interval: float,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.job = job
        self._watchdog = watchdog
        self._api = api.with_token(job.token or api.token)
        self._config = config
        self._agent_name = agent_name
        self._job_status_interval = job_status_interval if job_status_interval > 0 else 1.0
        self._cancelled = asyncio.Event()
        self._signal_reason: str | None = None
        self._shell: Shell | None = None

    def cancel(self, reason: str) -> None:
        """Interrupt the job; the first reason given (`cancel`, `agent_stop`) is reported."""
        if self._cancelled.is_set():
            return
        self._signal_reason = reason
        self._cancelled.set()
        if self._shell:
            self._shell.say(f"# Job cancelled ({reason}); interrupting the running process")

    async def run(self) -> None:
        try:
            await self._api.start_job(self.job.id, started_at=utc_timestamp())
        except ApiError as exc:
            # The server will never see a finish for this job; it has to treat it as dead.
            log.warning(
                "%s could not start job %s, dropping it: %s", self._agent_name, self.job.id, exc
            )
            return
        log.info("%s started job %s", self._agent_name, self.job.id)
        streamer = LogStreamer(
            partial(self._api.upload_chunk, self.job.id),
            max_chunk_size=self.job.chunks_max_size_bytes,
            interval=self.job.chunks_interval_seconds,
        )
        redactor = Redactor(streamer.write)
        self._shell = Shell(
            redactor.write,
            cancelled=self._cancelled,
            grace_period=self._config.cancel_grace_period,
            watchdog=self._watchdog,
        )
        streamer.start()
        watcher = asyncio.create_task(self._watch_state())
        try:
            outcome = await self._execute(self._shell, redactor)
            # Its end, as buildkite-agent reports it: before the log is flushed, which may
            # wait out a server outage.
            finished_at = utc_timestamp()
        finally:
            watcher.cancel()
            redactor.flush()
            chunks_failed = await streamer.close()
        finish = JobFinish(
            exit_status=outcome.status.code,
            signal=outcome.status.signal,
            signal_reason=outcome.signal_reason or self._signal_reason,
            chunks_failed_count=chunks_failed,
            finished_at=finished_at,
        )
        try:
            await self._api.finish_job(self.job.id, finish)
        except ApiError as exc:
            if exc.status == 422:  # closed without this agent (taken for lost, canceled)
                log.warning(
                    "%s job %s had been closed by the server: %s",
                    self._agent_name,
                    self.job.id,
                    exc,
                )
            else:
                log.error("%s could not finish job %s: %s", self._agent_name, self.job.id, exc)
            return
        log.info(
            "%s finished job %s with exit status %s%s",
            self._agent_name,
            self.job.id,
            finish.exit_status,
            f" ({finish.signal_reason})" if finish.signal_reason else "",
        )

    async def _execute(self, shell: Shell, redactor: Redactor) -> JobOutcome:
        try:
            env = self._environment()
            redactor.add_secrets_from_env(env)
            executor = JobExecutor(
                shell,
                redactor,
                env=env,
                build_path=self._config.build_path,
                settings=self._hook_settings(),
            )
            return JobOutcome(status=await executor.run())
        except Exception as exc:  # anything here is the agent failing to run the job
            log.exception("%s could not run job %s", self._agent_name, self.job.id)
            shell.error(f"The agent could not run this job: {exc}")
            return JobOutcome(status=AGENT_FAILURE, signal_reason=SIGNAL_REASON_PROCESS_RUN_ERROR)

    def _hook_settings(self) -> HookSettings:
        config = self._config
        return HookSettings(
            # Per worker, as buildkite-agent: workers never wait on each other's clones.
            plugins_dir=config.resolved_plugins_path / self._agent_name,
            hooks_path=config.hooks_path,
            plugins_base_url=config.plugins_base_url,
            plugins_enabled=config.plugins_enabled,
            local_hooks_enabled=config.local_hooks_enabled,
            strict_single_hooks=config.strict_single_hooks,
        )

    def _environment(self) -> dict[str, str]:
        config = self._config
        agent_values = {
            "BUILDKITE_AGENT_ENDPOINT": self._api.session.endpoint,
            "BUILDKITE_AGENT_ACCESS_TOKEN": self._api.token,
            "BUILDKITE_AGENT_PID": str(os.getpid()),
            "BUILDKITE_BUILD_PATH": str(config.build_path),
            "BUILDKITE_BUILD_CHECKOUT_PATH": str(
                checkout_path(config.build_path, self._agent_name, self.job.env)
            ),
            "BUILDKITE_BIN_PATH": str(config.resolved_bin_path),
            "BUILDKITE_SHELL": config.shell,
            "BUILDKITE_PLUGINS_PATH": str(config.resolved_plugins_path),
            "BUILDKITE_PLUGINS_ENABLED": _go_bool(config.plugins_enabled),
            "BUILDKITE_LOCAL_HOOKS_ENABLED": _go_bool(config.local_hooks_enabled),
            **request_header_env(self._api.session.request_headers),
        }
        if config.hooks_path is not None:
            agent_values["BUILDKITE_HOOKS_PATH"] = str(config.hooks_path)
        if config.plugins_always_clone_fresh:
            # Otherwise the pipeline's env may turn it on, as on buildkite-agent.
            agent_values["BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH"] = "true"
        return job_environment(self.job.env, agent_values)

    async def _watch_state(self) -> None:
        # The job was running when it started: the first poll is due one interval later.
        while not self._cancelled.is_set():
            await asyncio.sleep(self._job_status_interval)
            try:
                state = await self._api.job_state(self.job.id)
            except ApiError as exc:
                if exc.status == 401:
                    log.warning(
                        "%s job %s token rejected; cancelling", self._agent_name, self.job.id
                    )
                    self.cancel(SIGNAL_REASON_CANCEL)
                    return
                log.debug("%s could not poll job %s: %s", self._agent_name, self.job.id, exc)
            else:
                if state in CANCEL_STATES:
                    log.info("%s job %s is %s; cancelling", self._agent_name, self.job.id, state)
                    self.cancel(SIGNAL_REASON_CANCEL)
                    return
                if state in CLOSED_STATES:
                    log.warning(
                        "%s job %s was closed by the server (%s) while it ran here; stopping it",
                        self._agent_name,
                        self.job.id,
                        state,
                    )
                    self.cancel(SIGNAL_REASON_CANCEL)
                    return


def _go_bool(value: bool) -> str:
    return "true" if value else "false"
