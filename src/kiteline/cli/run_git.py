"""`kiteline run`'s checkout: the git repository around the working directory as it is now,
uncommitted and untracked files included, captured in a commit that leaves the working tree,
the index and the refs alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Who the snapshot commit says made it (it only ever lives in `kiteline run`'s checkouts).
SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "kiteline run",
    "GIT_AUTHOR_EMAIL": "kiteline-run@localhost",
    "GIT_COMMITTER_NAME": "kiteline run",
    "GIT_COMMITTER_EMAIL": "kiteline-run@localhost",
}


class GitError(Exception):
    """Git could not tell us what to run; the message says what to do about it."""


@dataclass(frozen=True)
class Snapshot:
    root: Path
    commit: str
    """HEAD, or a commit on top of it holding the working tree's changes."""
    head: str | None
    """None in a repository without commits yet."""
    branch: str
    message: str
    author: dict[str, str]

    @property
    def dirty(self) -> bool:
        return self.commit != self.head


def find_repository(start: Path) -> Path:
    """The top of the working tree `start` is in."""
    try:
        return Path(_git(start, "rev-parse", "--show-toplevel"))
    except GitError as error:
        if "not a git repository" not in str(error):
            raise  # e.g. git's "dubious ownership": its own words say what to do
        raise GitError(
            f"kiteline run checks out the git repository it runs in, but {start} is not inside "
            "the working tree of one: run it in your repository (or `git init` one)"
        ) from error


def snapshot(root: Path, *, exclude: Sequence[Path] = ()) -> Snapshot:
    """Commit the working tree (ignored files and `exclude` left out, whether git ignores
    them or not) through a private copy
    of the index, so nothing the user sees changes; a clean tree is simply HEAD."""
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or None
    tree = _working_tree(root, exclude)
    if head is not None and tree == _git(root, "rev-parse", f"{head}^{{tree}}"):
        commit = head
    else:
        parents = ["-p", head] if head else []
        commit = _git(
            root,
            "commit-tree",
            "--no-gpg-sign",
            tree,
            *parents,
            "-m",
            "kiteline run: the working tree with its uncommitted changes",
            env=SNAPSHOT_IDENTITY,
        )
    return Snapshot(
        root=root,
        commit=commit,
        head=head,
        branch=_git(root, "symbolic-ref", "--short", "--quiet", "HEAD", check=False) or "HEAD",
        message=_git(root, "log", "-1", "--format=%B", "HEAD") if head else "Uncommitted changes",
        author=_author(root, head),
    )


def is_ignored(root: Path, relative: Path) -> bool:
    """Whether git ignores the path (so a snapshot leaves it out)."""
    try:
        _git(root, "check-ignore", "--quiet", "--", relative.as_posix())
    except GitError:
        return False
    return True


def _working_tree(root: Path, exclude: Sequence[Path]) -> str:
    """`git add -A` into a copy of the index, then the tree it describes."""
    index = root / _git(root, "rev-parse", "--git-path", "index")
    with tempfile.TemporaryDirectory(prefix="kiteline-run-index-") as scratch:
        private = Path(scratch) / "index"
        if index.exists():
            shutil.copyfile(index, private)
        env = {"GIT_INDEX_FILE": str(private)}
        inside = [
            path.resolve().relative_to(root.resolve())
            for path in exclude
            if path.resolve().is_relative_to(root.resolve()) and path.resolve() != root.resolve()
        ]
        # An ignored path is left out anyway, and naming it in a pathspec makes `git add`
        # refuse ("The following paths are ignored…"), however the ignore rule is written.
        excluded = [
            f":(exclude,top){relative.as_posix()}"
            for relative in inside
            if not is_ignored(root, relative)
        ]
        _git(root, "add", "--all", "--", ":(top)", *excluded, env=env)
        return _git(root, "write-tree", env=env)


def _author(root: Path, head: str | None) -> dict[str, str]:
    if head is not None:
        name, _, email = _git(root, "log", "-1", "--format=%an%x00%ae", head).partition("\0")
    else:
        name = _git(root, "config", "user.name", check=False)
        email = _git(root, "config", "user.email", check=False)
    return {key: value for key, value in (("name", name), ("email", email)) if value}


def _git(cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise GitError("git is not installed (kiteline run needs it to check out)") from error
    if check and completed.returncode != 0:
        detail = completed.stderr.strip() or f"exit status {completed.returncode}"
        raise GitError(f"`git {' '.join(args)}` failed: {detail}")
    return completed.stdout.strip() if completed.returncode == 0 else ""
