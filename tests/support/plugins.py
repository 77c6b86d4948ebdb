"""Buildkite plugins made in tests: git repositories with a `hooks/` directory, tagged, served
as file:// URLs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def write_hooks(directory: Path, hooks: Mapping[str, str]) -> None:
    """`hooks/<name>` for each; a plugin without hooks still gets the (required) directory."""
    (directory / "hooks").mkdir(parents=True, exist_ok=True)
    for name, script in hooks.items():
        path = directory / "hooks" / name
        path.write_text(script)
        path.chmod(0o755)


def make_plugin(
    path: Path, hooks: Mapping[str, str], *, tag: str | None = "v1.0.0", branch: str = "main"
) -> Path:
    """A plugin repository at `path` with one commit of `hooks`, tagged `tag`."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    write_hooks(path, hooks)
    (path / "plugin.yml").write_text(f"name: {path.name}\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "plugin")
    if tag:
        git(path, "tag", tag)
    return path


def commit_hooks(path: Path, hooks: Mapping[str, str], *, tag: str | None = None) -> None:
    """A further commit of `hooks` in the plugin at `path` (tagged `tag`)."""
    write_hooks(path, hooks)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "change hooks")
    if tag:
        git(path, "tag", tag)
