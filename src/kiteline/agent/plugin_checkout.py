"""Plugins on disk: git checkouts per ref under the worker's plugins directory (locked while
being made, reused by later jobs), and vendored plugins inside the build's checkout."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kiteline.agent.checkout import Git, is_true
from kiteline.agent.hooks import Hook, HookScope, HookScript, find_hook
from kiteline.agent.plugin_config import ConfigurationError, configuration_env
from kiteline.agent.plugin_source import Plugin, PluginSourceError
from kiteline.agent.process import ExitStatus, Shell

CLONE_ATTEMPTS = 3
CLONE_RETRY_SECONDS = 2.0  # buildkite-agent's: three attempts, two seconds apart
LOCK_POLL_SECONDS = 0.1
FAILED = ExitStatus(code=1)


class PluginCheckoutError(Exception):
    """A plugin could not be made ready; the job fails with `status` and this message."""

    def __init__(self, message: str, status: ExitStatus = FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PluginCheckout:
    """A plugin ready to run: where its hooks are."""

    plugin: Plugin
    hooks_dir: Path

    def has(self, hook: Hook) -> bool:
        return find_hook(self.hooks_dir, hook) is not None

    def script(self, hook: Hook, shell: Shell) -> HookScript | None:
        """This plugin's `hook`, with the plugin's configuration as its extra variables (any
        trouble deriving them is reported in the log, as buildkite-agent reports it)."""
        path = find_hook(self.hooks_dir, hook)
        if path is None:
            return None
        try:
            environment = configuration_env(self.plugin.name, self.plugin.configuration)
        except ConfigurationError as error:
            shell.warning(f"Error configuring plugin environment: {error}")
            return HookScript(hook, path, HookScope.PLUGIN, self.plugin.display_name)
        if environment.deprecated:
            shell.say(f"~~~ Deprecated environment variables for plugin {self.plugin.name}")
            shell.say(
                "The way that environment variables are derived from the plugin configuration "
                "is changing. We'll export both the deprecated and the replacement names for "
                "now, You may be able to avoid this by removing consecutive underscore, hyphen, "
                "or whitespace characters in your plugin configuration."
            )
            for old, new in environment.deprecated:
                shell.say(f'deprecated: "{old}"\nreplacement: "{new}"\n')
        return HookScript(
            hook, path, HookScope.PLUGIN, self.plugin.display_name, environment.variables
        )


async def checkout_plugin(
    shell: Shell,
    plugin: Plugin,
    *,
    plugins_dir: Path,
    base_url: str,
    env: Mapping[str, str],
) -> PluginCheckout:
    """Clone `plugin` at its ref into `plugins_dir/<identifier>`, or reuse the clone a previous
    job made there (unless BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH). Other jobs wanting the same
    directory wait for the lock rather than clone over each other."""
    try:
        repository = plugin.repository(base_url)
        subdirectory = plugin.subdirectory
    except PluginSourceError as error:
        raise PluginCheckoutError(f"Failed to checkout plugin {plugin.name}: {error}") from error
    directory = plugins_dir / plugin.identifier
    checkout = PluginCheckout(plugin, directory / subdirectory / "hooks")
    try:
        await asyncio.to_thread(plugins_dir.mkdir, parents=True, exist_ok=True)
        async with _locked(shell, plugins_dir / f"{plugin.identifier}.lock", plugin):
            await _make_checkout(shell, plugin, repository, directory=directory, env=env)
    except OSError as error:  # an unwritable plugins path, a full disk
        raise PluginCheckoutError(f"Failed to checkout plugin {plugin.name}: {error}") from error
    if not checkout.hooks_dir.is_dir():
        hooks = (Path(subdirectory) / "hooks").as_posix()
        raise PluginCheckoutError(
            f'Failed to checkout plugin {plugin.name}: "{hooks}" was not a directory within '
            f'the "{plugin.name}" plugin'
        )
    return checkout


def vendored_plugin(plugin: Plugin, checkout_root: Path) -> PluginCheckout:
    """A plugin at a path inside the build's checkout (`./.buildkite/plugins/x`)."""
    root = checkout_root.resolve()
    directory = (root / plugin.location).resolve()
    hooks = directory / "hooks"
    if not directory.is_relative_to(root) or not directory.is_dir():
        raise PluginCheckoutError(
            f'vendored plugin path "{plugin.location}" must be a directory within the '
            "checked-out repository"
        )
    if not hooks.is_dir():
        raise PluginCheckoutError(
            f'vendored plugin hooks path "{Path(plugin.location) / "hooks"}" must be a '
            "directory within the checked-out repository"
        )
    return PluginCheckout(plugin, hooks)


async def _make_checkout(
    shell: Shell, plugin: Plugin, repository: str, *, directory: Path, env: Mapping[str, str]
) -> None:
    fresh = is_true(env.get("BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH"))
    removed, reusable = await asyncio.to_thread(_clear_unless_reusable, directory, fresh=fresh)
    if removed:
        shell.say(
            "# BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH is true; removed previous checkout of "
            f"plugin {plugin.label}"
        )
    if reusable:
        head = await _short_head(directory)
        shell.say(f'# Plugin "{plugin.label}" already checked out ({head})')
    else:
        await _clone(shell, plugin, repository, directory=directory, env=env)


def _clear_unless_reusable(directory: Path, *, fresh: bool) -> tuple[bool, bool]:
    """(removed for a fresh clone, a whole checkout is there to reuse). A directory without
    `.git` (made by hand, or by another tool) is removed so a clone can take its place."""
    if fresh and directory.exists():
        shutil.rmtree(directory)
        return True, False
    if (directory / ".git").is_dir():
        return False, True
    if directory.exists():
        shutil.rmtree(directory)
    return False, False


async def _clone(
    shell: Shell, plugin: Plugin, repository: str, *, directory: Path, env: Mapping[str, str]
) -> None:
    shell.say(f'# Plugin "{plugin.display_name}" will be checked out to "{directory}"')
    # A temporary name first, moved into place only once complete: a directory that exists
    # with a .git in it is always a whole checkout.
    shell.say(f"$ mktemp -dp {directory.parent}")
    temporary = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=directory.parent))
    try:
        git = Git(shell, env={**env, "GIT_TERMINAL_PROMPT": "0"}, cwd=temporary)
        recursive = [] if env.get("BUILDKITE_GIT_SUBMODULES") == "false" else ["--recursive"]
        for attempt in range(1, CLONE_ATTEMPTS + 1):
            status = await git("clone", "-v", *recursive, "--", repository, ".")
            if status.passed or shell.cancelled.is_set() or attempt == CLONE_ATTEMPTS:
                break
            shell.say(f"# Clone failed; retrying in {CLONE_RETRY_SECONDS:g}s")
            await asyncio.sleep(CLONE_RETRY_SECONDS)
            await asyncio.to_thread(_empty, temporary)
        if status.passed and plugin.version:
            shell.say(f"# Checking out `{plugin.version}`")
            status = await git("-c", "advice.detachedHead=false", "checkout", "-f", plugin.version)
        if not status.passed:
            raise PluginCheckoutError(
                f"Failed to checkout plugin {plugin.name} ({plugin.label}) from {repository}: "
                f"`{git.last_command}` exited with status {status.code}",
                status,
            )
        shell.say(f"$ mv {temporary} {directory}")
        await asyncio.to_thread(temporary.rename, directory)
    finally:
        # Gone once moved into place; otherwise a failed clone's leftovers.
        await asyncio.to_thread(shutil.rmtree, temporary, True)


def _empty(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


async def _short_head(directory: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        "rev-parse",
        "--short=7",
        "HEAD",
        cwd=directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    output, _ = await process.communicate()
    return output.decode().strip() if process.returncode == 0 else "can't `git rev-parse HEAD`"


@contextlib.asynccontextmanager
async def _locked(shell: Shell, path: Path, plugin: Plugin) -> AsyncIterator[None]:
    """An exclusive flock on `path`: between workers of this agent (each opens its own file
    description) and between agent processes sharing the plugins path."""
    descriptor = await asyncio.to_thread(os.open, path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waiting = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if shell.cancelled.is_set():
                    raise PluginCheckoutError(
                        f"Cancelled while waiting to checkout plugin {plugin.name}"
                    ) from None
                if not waiting:
                    shell.say(f"# Waiting for another job to finish checking out {plugin.label}")
                    waiting = True
                await asyncio.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # closing the description releases the lock
