"""The default git checkout: clone or fetch `BUILDKITE_REPO`, then check out the build's commit."""

from __future__ import annotations

import asyncio
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from kiteline.agent.process import ExitStatus, Shell

CLEAN_FLAGS = "-ffxdq"
FETCH_FLAGS = ("-v", "--prune")


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"true", "1", "yes", "on"}


def checkout_wanted(env: Mapping[str, str]) -> bool:
    return bool(env.get("BUILDKITE_REPO")) and not is_true(env.get("BUILDKITE_SKIP_CHECKOUT"))


async def checkout(shell: Shell, *, env: Mapping[str, str], directory: Path) -> ExitStatus:
    """Make `directory` a clean checkout of BUILDKITE_COMMIT (or BUILDKITE_BRANCH at `HEAD`)."""
    git = Git(shell, env={**env, "GIT_TERMINAL_PROMPT": "0"}, cwd=directory)
    repo = env["BUILDKITE_REPO"]
    commit = env.get("BUILDKITE_COMMIT") or "HEAD"
    branch = env.get("BUILDKITE_BRANCH", "")
    refspec = env.get("BUILDKITE_REFSPEC", "")

    shell.say("~~~ Preparing working directory")
    is_checkout, cleared = await asyncio.to_thread(_prepare, directory)
    if cleared:
        shell.say(f"# Removed the contents of {directory}: it was not a git checkout")
    if is_checkout:
        status = await git("remote", "set-url", "origin", repo)
    else:
        status = await git("clone", "-v", "--", repo, ".")
    if status.passed:
        status = await git("clean", CLEAN_FLAGS)
    if not status.passed:
        return _failed(shell, repo, commit, git.last_command, status)

    if refspec:
        status = await git("fetch", *FETCH_FLAGS, "--", "origin", *refspec.split())
        target = commit if commit != "HEAD" else "FETCH_HEAD"
    elif commit == "HEAD":
        status = await git("fetch", *FETCH_FLAGS, "--", "origin", branch or "HEAD")
        target = "FETCH_HEAD"
    else:
        status = await git("fetch", *FETCH_FLAGS, "--", "origin", commit)
        if not status.passed and not shell.cancelled.is_set():
            # Some servers refuse to serve a bare SHA; fetching every branch and tag finds it.
            shell.say(f"# Commit fetch failed; fetching all branches and tags to find {commit}")
            status = await git("fetch", *FETCH_FLAGS, "--tags", "--", "origin")
        target = commit
    if status.passed:
        status = await git("checkout", "-f", target)
    if status.passed:
        status = await git("clean", CLEAN_FLAGS)
    if not status.passed:
        return _failed(shell, repo, commit, git.last_command, status)
    return status


class Git:
    """Runs git in `cwd`, each command shown in the log as `$ git …` first."""

    def __init__(self, shell: Shell, *, env: Mapping[str, str], cwd: Path) -> None:
        self._shell = shell
        self._env = env
        self._cwd = cwd
        self.last_command = ""

    async def __call__(self, *args: str) -> ExitStatus:
        self.last_command = shlex.join(["git", *args])
        self._shell.say(f"$ {self.last_command}")
        return await self._shell.run(["git", *args], env=self._env, cwd=self._cwd)


def _prepare(directory: Path) -> tuple[bool, bool]:
    """Create `directory`, emptied for clone unless it is a checkout: (is checkout, cleared)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".git").is_dir():
        return True, False
    entries = list(directory.iterdir())
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return False, bool(entries)


def _failed(shell: Shell, repo: str, commit: str, command: str, status: ExitStatus) -> ExitStatus:
    shell.error(
        f"Failed to check out {repo} at {commit}: `{command}` exited with status {status.code}"
    )
    return status
