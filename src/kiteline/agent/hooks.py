"""Agent hooks (`--hooks-path`): sourced by bash, with their exported variables carried forward."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from kiteline.agent.process import ExitStatus, Shell

HOOKS_SHELL = "/bin/bash"
# Sourcing the hook lets `export` in it work; the environment it leaves is dumped NUL-separated
# to the file given as $1, then the wrapper exits with the hook's status.
_WRAPPER = 'source "$0"\n__kiteline_status=$?\nenv -0 > "$1" || exit $?\nexit $__kiteline_status\n'
# Variables bash maintains itself: never taken from a hook's dump.
_SHELL_OWNED = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


class Hook(enum.StrEnum):
    ENVIRONMENT = "environment"
    PRE_CHECKOUT = "pre-checkout"
    POST_CHECKOUT = "post-checkout"
    PRE_COMMAND = "pre-command"
    POST_COMMAND = "post-command"
    PRE_EXIT = "pre-exit"


@dataclass(frozen=True)
class HookResult:
    status: ExitStatus
    env: dict[str, str]
    """The job environment after the hook: its exports added, its unsets removed."""


def find_hook(hooks_path: Path | None, hook: Hook) -> Path | None:
    if hooks_path is None:
        return None
    path = hooks_path / hook.value
    return path if path.is_file() else None


async def run_hook(
    shell: Shell, path: Path, hook: Hook, *, env: dict[str, str], cwd: Path, env_dump: Path
) -> HookResult:
    shell.say(f"~~~ Running agent {hook.value} hook")
    shell.say(f"$ {path}")
    status = await shell.run(
        [HOOKS_SHELL, "-c", _WRAPPER, str(path), str(env_dump)], env=env, cwd=cwd
    )
    dump = _take(env_dump)
    if not status.passed or dump is None:
        return HookResult(status=status, env=env)
    return HookResult(status=status, env=_merge_exports(env, dump))


def _take(path: Path) -> bytes | None:
    """Read and delete a hook's env dump, so no later hook can see a stale one."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink()
    return content


def _merge_exports(before: dict[str, str], dump: bytes) -> dict[str, str]:
    after: dict[str, str] = {}
    for entry in dump.split(b"\0"):
        name, separator, value = entry.decode(errors="surrogateescape").partition("=")
        if separator and name not in _SHELL_OWNED:
            after[name] = value
    after.update({name: before[name] for name in _SHELL_OWNED if name in before})
    return after
