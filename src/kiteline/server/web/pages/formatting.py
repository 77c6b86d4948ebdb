"""How the web pages write what they show in words: durations, sizes, a build's source, a
commit's link to its code host."""

from __future__ import annotations

import re

#: How a build came to be, as the header says it (`Build.source`).
SOURCES = {
    "api": "API",
    "ui": "UI",
    "webhook": "Webhook",
    "schedule": "Schedule",
    "trigger_job": "Trigger step",
}

# Code hosts whose commit pages we know, from the repository URL's host and path.
_REPOSITORY = re.compile(
    r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|git@)"
    r"(?P<host>github\.com|gitlab\.com|bitbucket\.org)[:/]"
    r"(?P<path>[\w.-]+/[\w.-]+?)(?:\.git)?/?$"
)
_COMMIT_PATHS = {
    "github.com": "commit",
    "gitlab.com": "-/commit",
    "bitbucket.org": "commits",
}
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


def commit_url(repository: str, commit: str) -> str | None:
    """The commit's page on its code host, when the repository URL names a host we know and
    the commit is a sha (not `HEAD` or a branch)."""
    found = _REPOSITORY.match(repository.strip())
    if found is None or not _SHA.match(commit):
        return None
    host = found.group("host")
    return f"https://{host}/{found.group('path')}/{_COMMIT_PATHS[host]}/{commit}"


def duration_text(seconds: float | None) -> str:
    """`42s`, `3m 5s`, `1h 2m`: a job's or a build's duration as the page shows it."""
    if seconds is None:
        return ""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def size_text(size: int) -> str:
    """An artifact's size: bytes, KiB, MiB, GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover (the loop always returns)
