"""A job's phases on this machine — hooks, plugins, checkout, command and artifacts — in the
order buildkite-agent v3's job executor runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiteline.agent.api import ApiError
from kiteline.agent.checkout import checkout, is_true
from kiteline.agent.hooks import (
    REPOSITORY_HOOKS_DIR,
    Hook,
    HookScope,
    HookScript,
    find_hook,
    run_hook,
)
from kiteline.agent.in_job.artifact_upload import NoFilesMatched, upload_artifacts
from kiteline.agent.in_job.context import InJobError, JobEnvironment
from kiteline.agent.plugin_checkout import (
    PluginCheckout,
    PluginCheckoutError,
    checkout_plugin,
    vendored_plugin,
)
from kiteline.agent.plugin_source import (
    DEFAULT_PLUGINS_BASE_URL,
    Plugin,
    PluginSourceError,
    parse_plugins,
)
from kiteline.agent.process import CANCELLED_BEFORE_START, ExitStatus, ProcessStartError, Shell
from kiteline.agent.redactor import REDACTOR_FILE_ENV, Redactor

PASSED = ExitStatus(code=0)
FAILED = ExitStatus(code=1)
ARTIFACT_UPLOAD_FAILED = FAILED
# Only one of these may run, a plugin's before the repository's before the agent's.
SINGLE_HOOKS = frozenset({Hook.CHECKOUT, Hook.COMMAND})


@dataclass(frozen=True)
class HookSettings:
    """What the agent's configuration decides about hooks and plugins, for every job."""

    plugins_dir: Path
    """This worker's plugin checkouts: `<plugins-path>/<agent name>`, as buildkite-agent."""
    hooks_path: Path | None = None
    plugins_base_url: str = DEFAULT_PLUGINS_BASE_URL
    plugins_enabled: bool = True
    local_hooks_enabled: bool = True
    strict_single_hooks: bool = False


class JobExecutor:
    """Runs, as buildkite-agent v3 does:

    agent environment → plugins checked out, their environment hooks → pre-checkout (agent,
    plugins) → checkout (a plugin's checkout hook, else the agent's, else git) → post-checkout
    → vendored plugins' environment hooks → pre-command → command (a plugin's command hook,
    else the repository's, else the agent's, else BUILDKITE_COMMAND) → post-command →
    pre-artifact, upload, post-artifact (with BUILDKITE_ARTIFACT_PATHS) → pre-exit.

    Where several run, the agent's hook comes first, then the repository's
    (`.buildkite/hooks`, once checked out), then each plugin's in the step's order, vendored
    plugins after the others.

    A failing phase skips the later ones except pre-exit; post-command and the artifact phase
    run even when the command failed, and a failed upload fails a job whose command passed.
    Hooks' exports are carried into every later phase (and their secret values into the
    redactor); a plugin's configuration variables reach its own hooks only. Once the job is
    cancelled nothing new starts, pre-exit included.
    """

    def __init__(
        self,
        shell: Shell,
        redactor: Redactor,
        *,
        env: dict[str, str],
        build_path: Path,
        settings: HookSettings,
    ) -> None:
        self._shell = shell
        self._redactor = redactor
        self.env = env
        self._settings = settings
        self._cwd = build_path
        self._plugins: list[Plugin] = []
        self._checkouts: list[PluginCheckout] = []
        self._checkout_dir: Path | None = None
        """Set once checked out: repository hooks and vendored plugins are found there."""
        self._scratch = tempfile.TemporaryDirectory(prefix="kiteline-job-")
        self._env_dump = Path(self._scratch.name) / "env"
        redactions = Path(self._scratch.name) / "redactions"
        redactions.touch()
        redactor.watch(redactions)
        self.env[REDACTOR_FILE_ENV] = str(redactions)

    async def run(self) -> ExitStatus:
        await asyncio.to_thread(self._cwd.mkdir, parents=True, exist_ok=True)
        with self._scratch:
            status = await self._hooks(Hook.ENVIRONMENT)
            if status.passed:
                status = await self._plugin_phase()
            if status.passed:
                status = await self._checkout_phase()
            if status.passed:
                status = await self._vendored_plugin_phase()
            if status.passed:
                status = await self._artifact_phase(await self._command_phase())
            if not self._shell.cancelled.is_set():
                pre_exit = await self._hooks(Hook.PRE_EXIT)
                status = status if not status.passed else pre_exit
        return status

    # -- phases -------------------------------------------------------------------------------

    async def _plugin_phase(self) -> ExitStatus:
        # Read after the agent's environment hook, which may change or vet the list.
        definition = self.env.get("BUILDKITE_PLUGINS", "").strip()
        if definition in ("", "null"):
            return PASSED
        self._shell.say("~~~ Preparing plugins")
        if not self._settings.plugins_enabled:
            return self._fail("Plugins have been disabled on this agent with `--no-plugins`")
        try:
            self._plugins = parse_plugins(definition)
        except PluginSourceError as error:
            return self._fail(f"Failed to parse a plugin definition: {error}")
        by_label: dict[str, PluginCheckout] = {}
        for plugin in self._plugins:
            if plugin.vendored:
                continue  # found once the repository is checked out
            if (known := by_label.get(plugin.label)) is not None:
                # The same plugin twice: one checkout, each with its own configuration.
                self._checkouts.append(dataclasses.replace(known, plugin=plugin))
                continue
            try:
                known = await checkout_plugin(
                    self._shell,
                    plugin,
                    plugins_dir=self._settings.plugins_dir,
                    base_url=self._settings.plugins_base_url,
                    env=self.env,
                )
            except PluginCheckoutError as error:
                return self._fail(str(error), error.status)
            by_label[plugin.label] = known
            self._checkouts.append(known)
        return await self._plugin_hooks(Hook.ENVIRONMENT, self._checkouts)

    async def _checkout_phase(self) -> ExitStatus:
        status = await self._agent_hook(Hook.PRE_CHECKOUT)
        if status.passed:
            status = await self._plugin_hooks(Hook.PRE_CHECKOUT, self._checkouts)
        if not status.passed:
            return status
        # Read after the environment hooks, which may move the checkout.
        directory = Path(self.env["BUILDKITE_BUILD_CHECKOUT_PATH"])
        has_hook = self._has_plugin_hook(Hook.CHECKOUT) or self._agent_hook_path(Hook.CHECKOUT)
        if is_true(self.env.get("BUILDKITE_SKIP_CHECKOUT")) or not (
            has_hook or self.env.get("BUILDKITE_REPO")
        ):
            self._shell.say("~~~ Preparing working directory")
            self._shell.say("# Skipping checkout: no BUILDKITE_REPO, or BUILDKITE_SKIP_CHECKOUT")
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        elif has_hook:
            # A checkout hook replaces git's checkout; it runs in the (created) checkout path.
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            self._cwd = directory
            status = await self._single_hook(Hook.CHECKOUT)
        else:
            status = await checkout(self._shell, env=self.env, directory=directory)
        if not status.passed:
            return status
        self._cwd = self._checkout_dir = directory
        return await self._hooks(Hook.POST_CHECKOUT)

    async def _vendored_plugin_phase(self) -> ExitStatus:
        vendored: list[PluginCheckout] = []
        for plugin in self._plugins:
            if plugin.vendored:
                try:
                    vendored.append(vendored_plugin(plugin, self._checkout_dir or self._cwd))
                except PluginCheckoutError as error:
                    return self._fail(str(error), error.status)
        self._checkouts += vendored
        return await self._plugin_hooks(Hook.ENVIRONMENT, vendored)

    async def _command_phase(self) -> ExitStatus:
        status = await self._hooks(Hook.PRE_COMMAND)
        if not status.passed:
            return status
        if (
            self._has_plugin_hook(Hook.COMMAND)
            or self._repository_hook_path(Hook.COMMAND)
            or self._agent_hook_path(Hook.COMMAND)
        ):
            status = await self._single_hook(Hook.COMMAND)
        else:
            status = await self._default_command()
        self.env["BUILDKITE_COMMAND_EXIT_STATUS"] = str(status.code)
        post_command = await self._hooks(Hook.POST_COMMAND)
        return status if not status.passed else post_command

    async def _default_command(self) -> ExitStatus:
        command = self.env.get("BUILDKITE_COMMAND", "")
        if not command.strip():
            return self._fail(
                "The command phase has no `command` to execute; provide a `command` field in "
                "your step configuration or define a `command` hook in a step plugin, your "
                "repository `.buildkite/hooks`, or the agent `hooks-path`"
            )
        self._shell.say("~~~ Running commands")
        self._shell.say(f"$ {command}")
        argv = [*shlex.split(self.env["BUILDKITE_SHELL"]), command]
        status = await self._shell.run(argv, env=self.env, cwd=self._cwd)
        if not status.passed and not self._shell.cancelled.is_set():
            self._shell.error(f"The command exited with status {status.code}")
        return status

    async def _artifact_phase(self, command_status: ExitStatus) -> ExitStatus:
        globs = self.env.get("BUILDKITE_ARTIFACT_PATHS", "").strip()
        if not globs or self._shell.cancelled.is_set():
            return command_status
        status = await self._hooks(Hook.PRE_ARTIFACT)
        if status.passed:
            status = await self._upload_artifacts(globs)
        if status.passed:
            status = await self._hooks(Hook.POST_ARTIFACT)
        return command_status if not command_status.passed else status

    async def _upload_artifacts(self, globs: str) -> ExitStatus:
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
            return ARTIFACT_UPLOAD_FAILED
        return PASSED

    # -- hooks --------------------------------------------------------------------------------

    async def _hooks(self, hook: Hook) -> ExitStatus:
        """The agent's `hook`, then the repository's, then each plugin's."""
        status = await self._agent_hook(hook)
        if status.passed:
            status = await self._repository_hook(hook)
        if status.passed:
            status = await self._plugin_hooks(hook, self._checkouts)
        return status

    async def _single_hook(self, hook: Hook) -> ExitStatus:
        """The checkout or command hook: plugins' if any has one, else the repository's, else
        the agent's."""
        if self._has_plugin_hook(hook):
            return await self._plugin_hooks(hook, self._checkouts)
        if self._repository_hook_path(hook):
            return await self._repository_hook(hook)
        return await self._agent_hook(hook)

    def _agent_hook_path(self, hook: Hook) -> Path | None:
        return find_hook(self._settings.hooks_path, hook)

    def _repository_hook_path(self, hook: Hook) -> Path | None:
        if self._checkout_dir is None:
            return None
        return find_hook(self._checkout_dir / REPOSITORY_HOOKS_DIR, hook)

    def _has_plugin_hook(self, hook: Hook) -> bool:
        return any(checkout.has(hook) for checkout in self._checkouts)

    async def _agent_hook(self, hook: Hook) -> ExitStatus:
        path = self._agent_hook_path(hook)
        return PASSED if path is None else await self._run(HookScript(hook, path, HookScope.AGENT))

    async def _repository_hook(self, hook: Hook) -> ExitStatus:
        path = self._repository_hook_path(hook)
        if path is None:
            return PASSED
        if not self._settings.local_hooks_enabled or self.env.get("BUILDKITE_NO_LOCAL_HOOKS") in (
            "true",
            "1",
        ):
            return self._fail(f"Refusing to run {path}, local hooks are disabled")
        return await self._run(HookScript(hook, path, HookScope.REPOSITORY))

    async def _plugin_hooks(self, hook: Hook, checkouts: Sequence[PluginCheckout]) -> ExitStatus:
        ran_one = False
        for position, checkout_ in enumerate(checkouts, start=1):
            if not checkout_.has(hook):
                continue
            if hook in SINGLE_HOOKS and ran_one:
                name = checkout_.plugin.name
                if self._settings.strict_single_hooks:
                    self._shell.warning(
                        f"Ignoring additional {hook} hook ({name} plugin, position {position})"
                    )
                    continue
                self._shell.warning(
                    f"The additional {hook} hook ({name} plugin, position {position}) will be "
                    f"ignored in a future version of the agent. To enforce single {hook} hooks "
                    "now, pass the --strict-single-hooks flag, set the environment variable "
                    "BUILDKITE_STRICT_SINGLE_HOOKS=true"
                )
            ran_one = True
            script = checkout_.script(hook, self._shell)
            if script is not None:
                status = await self._run(script)
                if not status.passed:
                    return status
        return PASSED

    async def _run(self, script: HookScript) -> ExitStatus:
        if self._shell.cancelled.is_set():
            return CANCELLED_BEFORE_START
        try:
            result = await run_hook(
                self._shell, script, env=self.env, cwd=self._cwd, env_dump=self._env_dump
            )
        except ProcessStartError as error:
            return self._fail(f"The {script.title} hook could not be run: {error}")
        if not result.status.passed:
            if not self._shell.cancelled.is_set():
                self._shell.error(
                    f"The {script.title} hook exited with status {result.status.code}"
                )
            return result.status
        self.env = result.env
        self._redactor.add_secrets_from_env(self.env)
        return result.status

    def _fail(self, message: str, status: ExitStatus = FAILED) -> ExitStatus:
        self._shell.error(message)
        return status
