"""A job's phases on this machine: hooks, checkout, command and artifacts, like buildkite-agent's
bootstrap."""

from __future__ import annotations

import asyncio
import shlex
import tempfile
from pathlib import Path

from kiteline.agent.api import ApiError
from kiteline.agent.checkout import checkout, checkout_wanted
from kiteline.agent.hooks import Hook, find_hook, run_hook
from kiteline.agent.in_job.artifact_upload import NoFilesMatched, upload_artifacts
from kiteline.agent.in_job.context import InJobError, JobEnvironment
from kiteline.agent.process import CANCELLED_BEFORE_START, ExitStatus, Shell
from kiteline.agent.redactor import REDACTOR_FILE_ENV, Redactor

PASSED = ExitStatus(code=0)
ARTIFACT_UPLOAD_FAILED = ExitStatus(code=1)


class JobExecutor:
    """Runs environment → checkout (pre/post hooks) → command (pre/post hooks) → artifacts →
    pre-exit.

    A failing phase skips the later ones except pre-exit; post-command and the artifact upload
    (of BUILDKITE_ARTIFACT_PATHS) run even when the command failed, and a failed upload fails
    a job whose command passed. Hooks' exports are carried into every later phase (and their
    secret values into the redactor). Once the job is cancelled nothing new starts, pre-exit
    included.
    """

    def __init__(
        self,
        shell: Shell,
        redactor: Redactor,
        *,
        env: dict[str, str],
        build_path: Path,
        hooks_path: Path | None,
    ) -> None:
        self._shell = shell
        self._redactor = redactor
        self.env = env
        self._hooks_path = hooks_path
        self._cwd = build_path
        self._scratch = tempfile.TemporaryDirectory(prefix="kiteline-job-")
        self._env_dump = Path(self._scratch.name) / "env"
        redactions = Path(self._scratch.name) / "redactions"
        redactions.touch()
        redactor.watch(redactions)
        self.env[REDACTOR_FILE_ENV] = str(redactions)

    async def run(self) -> ExitStatus:
        await asyncio.to_thread(self._cwd.mkdir, parents=True, exist_ok=True)
        with self._scratch:
            status = await self._hook(Hook.ENVIRONMENT)
            if status.passed:
                status = await self._checkout_phase()
            if status.passed:
                status = await self._artifact_phase(await self._command_phase())
            if not self._shell.cancelled.is_set():
                pre_exit = await self._hook(Hook.PRE_EXIT)
                status = status if not status.passed else pre_exit
        return status

    async def _checkout_phase(self) -> ExitStatus:
        status = await self._hook(Hook.PRE_CHECKOUT)
        if not status.passed:
            return status
        # Read after the environment hooks, which may move the checkout.
        directory = Path(self.env["BUILDKITE_BUILD_CHECKOUT_PATH"])
        if checkout_wanted(self.env):
            status = await checkout(self._shell, env=self.env, directory=directory)
        else:
            self._shell.say("~~~ Preparing working directory")
            self._shell.say("# Skipping checkout: no BUILDKITE_REPO, or BUILDKITE_SKIP_CHECKOUT")
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        if not status.passed:
            return status
        self._cwd = directory
        return await self._hook(Hook.POST_CHECKOUT)

    async def _command_phase(self) -> ExitStatus:
        status = await self._hook(Hook.PRE_COMMAND)
        if not status.passed:
            return status
        command = self.env.get("BUILDKITE_COMMAND", "")
        if not command.strip():
            self._shell.error("There is no command to run: BUILDKITE_COMMAND is empty")
            return ExitStatus(code=1)
        self._shell.say("~~~ Running commands")
        self._shell.say(f"$ {command}")
        argv = [*shlex.split(self.env["BUILDKITE_SHELL"]), command]
        status = await self._shell.run(argv, env=self.env, cwd=self._cwd)
        if not status.passed and not self._shell.cancelled.is_set():
            self._shell.error(f"The command exited with status {status.code}")
        self.env["BUILDKITE_COMMAND_EXIT_STATUS"] = str(status.code)
        post_command = await self._hook(Hook.POST_COMMAND)
        return status if not status.passed else post_command

    async def _artifact_phase(self, command_status: ExitStatus) -> ExitStatus:
        globs = self.env.get("BUILDKITE_ARTIFACT_PATHS", "").strip()
        if not globs or self._shell.cancelled.is_set():
            return command_status
        self._shell.say("~~~ Uploading artifacts")
        try:
            await upload_artifacts(
                JobEnvironment(self.env),
                globs,
                cwd=self._cwd,
                say=self._shell.say,
                destination=self.env.get("BUILDKITE_ARTIFACT_UPLOAD_DESTINATION", ""),
            )
        except NoFilesMatched as warning:
            # As buildkite-agent: a step whose artifacts did not appear is not failed for it.
            self._shell.warning(str(warning))
        except (InJobError, ApiError) as error:
            self._shell.error(f"Uploading artifacts failed: {error}")
            return command_status if not command_status.passed else ARTIFACT_UPLOAD_FAILED
        return command_status

    async def _hook(self, hook: Hook) -> ExitStatus:
        path = find_hook(self._hooks_path, hook)
        if path is None:
            return PASSED
        if self._shell.cancelled.is_set():
            return CANCELLED_BEFORE_START
        result = await run_hook(
            self._shell, path, hook, env=self.env, cwd=self._cwd, env_dump=self._env_dump
        )
        if not result.status.passed:
            if self._shell.cancelled.is_set():
                return result.status
            self._shell.error(
                f"The agent {hook.value} hook exited with status {result.status.code}"
            )
            return result.status
        self.env = result.env
        self._redactor.add_secrets_from_env(self.env)
        return result.status
