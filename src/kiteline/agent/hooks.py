"""Hooks — the agent's (`--hooks-path`), the repository's (`.buildkite/hooks`) and plugins' —
run as buildkite-agent runs them: shell hooks sourced by bash with their exported variables
carried forward, other scripts and binaries executed as they are."""

from __future__ import annotations

import enum
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiteline.agent.process import ExitStatus, Shell

HOOKS_SHELL = "/bin/bash"
REPOSITORY_HOOKS_DIR = Path(".buildkite") / "hooks"
# Sourcing the hook lets `export` in it work; the environment it leaves is dumped NUL-separated
# to the file given as $1, then the wrapper exits with the hook's status.
_WRAPPER = 'source "$0"\n__kiteline_status=$?\nenv -0 > "$1" || exit $?\nexit $__kiteline_status\n'
# Variables bash maintains itself: never taken from a hook's dump.
_SHELL_OWNED = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})
_POSIX_SHELLS = frozenset({"bash", "dash", "ksh", "sh", "zsh"})
_EXECUTABLE_MAGIC = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")


class Hook(enum.StrEnum):
    ENVIRONMENT = "environment"
    PRE_CHECKOUT = "pre-checkout"
    CHECKOUT = "checkout"
    POST_CHECKOUT = "post-checkout"
    PRE_COMMAND = "pre-command"
    COMMAND = "command"
    POST_COMMAND = "post-command"
    PRE_ARTIFACT = "pre-artifact"
    POST_ARTIFACT = "post-artifact"
    PRE_EXIT = "pre-exit"


class HookScope(enum.StrEnum):
    AGENT = "agent"
    REPOSITORY = "repository"
    PLUGIN = "plugin"


@dataclass(frozen=True)
class HookScript:
    """One hook file and whose it is."""

    hook: Hook
    path: Path
    scope: HookScope
    plugin: str = ""
    """The plugin's display name, for plugin hooks."""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """Variables for this hook alone (a plugin's configuration): never carried forward."""

    @property
    def title(self) -> str:
        """`agent pre-command`, `plugin docker-compose pre-command`, as the log names it."""
        return " ".join(filter(None, [self.scope.value, self.plugin, self.hook.value]))


@dataclass(frozen=True)
class HookResult:
    status: ExitStatus
    env: dict[str, str]
    """The job environment after the hook: its exports added, its unsets removed."""


def find_hook(directory: Path | None, hook: Hook) -> Path | None:
    if directory is None:
        return None
    path = directory / hook.value
    return path if path.is_file() else None


async def run_hook(
    shell: Shell, script: HookScript, *, env: dict[str, str], cwd: Path, env_dump: Path
) -> HookResult:
    shell.say(f"~~~ Running {script.title} hook")
    shell.say(f"$ {script.path}")
    hook_env = {**env, **script.extra_env}
    if not _is_shell_script(script.path):
        # As buildkite-agent: scripts for other interpreters, and binaries, run as they are;
        # their environment changes cannot be seen.
        status = await shell.run(
            [str(script.path)],
            env={
                **hook_env,
                "BUILDKITE_HOOK_PHASE": script.hook.value,
                "BUILDKITE_HOOK_PATH": str(script.path),
                "BUILDKITE_HOOK_SCOPE": script.scope.value,
            },
            cwd=cwd,
        )
        return HookResult(status=status, env=env)
    status = await shell.run(
        [HOOKS_SHELL, "-c", _WRAPPER, str(script.path), str(env_dump)], env=hook_env, cwd=cwd
    )
    dump = _take(env_dump)
    if not status.passed or dump is None:
        return HookResult(status=status, env=env)
    return HookResult(status=status, env=_apply_changes(env, before=hook_env, dump=dump))


def _is_shell_script(path: Path) -> bool:
    """Sourced unless a binary or a script whose `#!` names something other than a POSIX
    shell (`#!/usr/bin/env python3`); no `#!` at all means shell."""
    with path.open("rb") as file:
        head = file.readline(4096)
    if head.startswith(_EXECUTABLE_MAGIC):
        return False
    if not head.startswith(b"#!"):
        return True
    try:
        words = shlex.split(head[2:].decode(errors="replace"))
    except ValueError:
        return False
    if not words:
        return False
    program = Path(words[0]).name
    if program == "env":
        program = Path(words[1]).name if len(words) > 1 else ""
    return program in _POSIX_SHELLS


def _take(path: Path) -> bytes | None:
    """Read and delete a hook's env dump, so no later hook can see a stale one."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink()
    return content


def _apply_changes(env: dict[str, str], *, before: dict[str, str], dump: bytes) -> dict[str, str]:
    """`env` with what the hook changed relative to `before` (what it started with): a
    hook-only variable the hook left alone stays out of the job's environment."""
    after: dict[str, str] = {}
    for entry in dump.split(b"\0"):
        name, separator, value = entry.decode(errors="surrogateescape").partition("=")
        if separator and name not in _SHELL_OWNED:
            after[name] = value
    changed = dict(env)
    for name in before.keys() - after.keys() - _SHELL_OWNED:
        changed.pop(name, None)
    for name, value in after.items():
        if before.get(name) != value:
            changed[name] = value
    return changed
