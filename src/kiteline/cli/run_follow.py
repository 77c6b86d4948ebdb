"""`kiteline run` following its build: polls it, prints the logs, answers block steps, and
notices what will never run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kiteline.cli.api import refusal
from kiteline.cli.display import job_label, shown_jobs
from kiteline.cli.run_display import FINISHED_STATES, BuildView
from kiteline.cli.run_prompt import ask, preset_fields
from kiteline.client import AsyncClient, Unprocessable
from kiteline.client.models import Build, Job
from kiteline.server.jobs.matching import rules_match

T = TypeVar("T")

POLL_SECONDS = 0.3
#: REST job states of jobs an agent or the server is still working on.
ACTIVE_STATES = frozenset(
    {"scheduled", "assigned", "accepted", "running", "canceling", "timing_out"}
)


class Follower:
    """Polls the build, prints logs, answers block steps, notices what will never run."""

    def __init__(
        self,
        client: AsyncClient,
        view: BuildView,
        *,
        pipeline: str,
        number: int,
        agents: list[asyncio.subprocess.Process],
        agent_groups: list[dict[str, str]],
        answers: dict[str, str],
        interactive: bool,
        stop: asyncio.Event,
        force: asyncio.Event,
    ) -> None:
        self.client = client
        self.view = view
        self.pipeline = pipeline
        self.number = number
        self.agents = agents
        self.agent_tags = agent_groups
        self.interactive = interactive
        self.stop = stop
        """Set: cancel the build and see it finish."""
        self.force = force
        """Set: stop following at once."""
        self.build: Build | None = None
        self.error: str | None = None
        self.interrupted = False
        self._answers = dict(answers)
        self._canceled = False
        self._logged: set[str] = set()
        self._left_blocked: set[str] = set()

    async def follow(self) -> None:
        try:
            await self._follow()
        finally:
            self.view.show_logs(everything=True)

    async def _follow(self) -> None:
        while not self.force.is_set():
            build = self.build = await self.client.build(
                self.pipeline, self.number, include_retried_jobs=True, exclude_pipeline=True
            )
            self.view.update(build)
            await self._show_logs(build)
            if self.stop.is_set() and not self._canceled:
                self.interrupted = True
                self.view.say("Canceling the build (Ctrl-C again to stop at once)…", style="yellow")
                await self._cancel()
                continue
            blocked = [
                job
                for job in build.jobs
                if job.type == "manual"
                and job.state == "blocked"
                and job.id not in self._left_blocked
            ]
            if blocked and not self._canceled:
                await self._unblock(blocked[0])
                continue
            if build.finished:
                return
            if self._left_blocked and not any(j.state in ACTIVE_STATES for j in build.jobs):
                return  # what could run has run; the rest waits for a block nobody answers
            if not self._canceled:
                problem = self._unrunnable(build) or self._agents_gone()
                if problem is not None:
                    self.error = problem
                    await self._cancel()
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.stop.wait() if not self._canceled else self.force.wait(), POLL_SECONDS
                )

    async def _cancel(self) -> None:
        self._canceled = True
        with contextlib.suppress(Unprocessable):  # it finished meanwhile
            await self.client.cancel_build(self.pipeline, self.number)

    async def _show_logs(self, build: Build) -> None:
        for job in shown_jobs(build):
            finished = job.state in FINISHED_STATES
            if job.type == "script" and job.started_at and job.id not in self._logged:
                log = await self.client.job_log(self.pipeline, self.number, job.id)
                self.view.log(job, log, complete=finished)
                if finished:
                    self._logged.add(job.id)
            if finished:
                self.view.finished(job)
        self.view.show_logs()

    async def _unblock(self, job: Job) -> None:
        problem: str | None = None
        while True:
            if self.interactive:
                with self.view.paused():
                    fields = await self._until_stopped(
                        functools.partial(
                            ask, self.view.console, job, self._answers, problem=problem
                        )
                    )
                if self.stop.is_set():
                    return
                if fields is None:
                    self._leave_blocked(job, f"{job_label(job)!r} was not unblocked")
                    return
            else:
                fields = preset_fields(job, self._answers)
            try:
                await self.client.unblock_job(self.pipeline, self.number, job.id, fields=fields)
            except Unprocessable as error:
                if not error.errors:
                    return  # no longer blocked (canceled meanwhile?): the next poll tells
                if not self.interactive:
                    self._leave_blocked(job, _unanswerable(job, error))
                    return
                problem = refusal(error)
                for wrong in error.errors:
                    self._answers.pop(wrong.get("field", ""), None)
                continue
            answered = ", ".join(f"{key}={value}" for key, value in fields.items())
            self.view.say(
                f"▶ {job_label(job)} unblocked" + (f" ({answered})" if answered else ""),
                style="magenta",
            )
            return

    def _leave_blocked(self, job: Job, reason: str) -> None:
        """As on Buildkite, the build stops at the block; the run fails."""
        self._left_blocked.add(job.id)
        self.error = reason
        self.view.say(reason, style="red")

    async def _until_stopped(self, question: Callable[[], T]) -> T | None:
        """Ask in a daemon thread (input() cannot be interrupted; the server must go on
        serving meanwhile); None if Ctrl-C comes first."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                result = question()
            except BaseException as error:  # EOF or ^D at the prompt: the caller decides
                loop.call_soon_threadsafe(_settle_error, answer, error)
            else:
                loop.call_soon_threadsafe(_settle, answer, result)

        threading.Thread(target=work, name="kiteline-run-prompt", daemon=True).start()
        stopped = asyncio.ensure_future(self.stop.wait())
        waiting: list[asyncio.Future[Any]] = [answer, stopped]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not answer.done():
            return None
        try:
            return answer.result()
        except (EOFError, KeyboardInterrupt):
            self.stop.set()
            return None

    def _unrunnable(self, build: Build) -> str | None:
        groups = self.agent_tags
        for job in build.jobs:
            if job.type != "script" or job.state != "scheduled":
                continue
            rules = job.agent_query_rules
            if not any(rules_match(rules, tags) for tags in groups):
                have = " or ".join(",".join(f"{k}={v}" for k, v in tags.items()) for tags in groups)
                return (
                    f"No local agent can run {job_label(job)!r}: it needs "
                    f"{', '.join(rules)}, and the agents have {have}. "
                    f"Start matching agents with --tag (e.g. --tag {rules[0]})."
                )
        return None

    def _agents_gone(self) -> str | None:
        for process in self.agents:
            if process.returncode is not None:
                return f"The local agents stopped unexpectedly (exit status {process.returncode})"
        return None


def _settle(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def _settle_error(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _unanswerable(job: Job, error: Unprocessable) -> str:
    missing = [wrong["field"] for wrong in error.errors if wrong.get("field")]
    flags = " ".join(f"--unblock {key}=VALUE" for key in missing)
    return (
        f"{job_label(job)!r} could not be unblocked: {refusal(error)}. "
        "There is no terminal to ask on" + (f": pass {flags}" if flags else "")
    )
