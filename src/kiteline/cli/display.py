"""How every command shows builds and jobs to people: state colours, job labels, durations,
times, `KEY=VALUE` options. `kiteline run` and the API commands both draw from here, so a
canceled job or a two-minute build looks the same wherever it is shown."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import typer
from rich.text import Text

from kiteline.client.models import Build, Job
from kiteline.pairs import pairs_dict

STATE_STYLES = {
    "passed": "green",
    "unblocked": "green",
    "finished": "green",
    "connected": "green",
    "failed": "red",
    "failing": "red",
    "broken": "red",
    "timed_out": "red",
    "timing_out": "red",
    "expired": "red",
    "waiting_failed": "red",
    "blocked_failed": "red",
    "unblocked_failed": "red",
    "error": "red",
    "lost": "red",
    "soft_failed": "yellow",
    "running": "yellow",
    "scheduled": "yellow",
    "creating": "yellow",
    "assigned": "yellow",
    "accepted": "yellow",
    "reserved": "yellow",
    "limiting": "yellow",
    "limited": "yellow",
    "stopping": "yellow",
    "new": "yellow",
    "blocked": "magenta",
    "canceled": "bright_black",
    "canceling": "bright_black",
}
#: States not named above (skipped, not_run, waiting, pending, disconnected...) are dim.
OTHER_STATE_STYLE = "bright_black"
#: A mark in front of a finished job's line: done, stopped, left out; anything else failed.
MARKS = {"passed": "✔", "unblocked": "✔", "soft_failed": "⚠", "canceled": "■", "skipped": "-"}
FAILED_MARK = "✘"


def state_style(state: str) -> str:
    return STATE_STYLES.get(state, OTHER_STATE_STYLE)


def state_text(state: str | None, *, bold: bool = False) -> Text:
    shown = state or "unknown"
    style = state_style(shown)
    return Text(shown, style=f"bold {style}" if bold else style)


def build_state(build: Build) -> str:
    """The state to show: a build waiting at a block step is `blocked` (Buildkite's REST says
    `passed` with `blocked: true`)."""
    if build.blocked and build.state != "failed":
        return "blocked"
    return build.state or "unknown"


def job_state(job: Job) -> str:
    """The state to show: a job whose failure was allowed (`soft_fail`) is `soft_failed`, as
    Buildkite's web UI shows it, not `failed`."""
    if job.soft_failed and job.state == "failed":
        return "soft_failed"
    return job.state or "unknown"


def first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def job_label(job: Job) -> str:
    """What Buildkite shows for a job: its label, else its command's first line."""
    label = job.label or job.name or first_line(job.command)
    if label:
        return label
    return {"waiter": "wait", "manual": "block", "trigger": "trigger"}.get(job.type or "", job.id)


def shown_jobs(build: Build) -> list[Job]:
    """The jobs worth a row: wait steps are left out."""
    return [job for job in build.jobs if job.type != "waiter"]


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long from `start` to `end` (or until now, while it runs): `5s`, `2m05s`, `1h02m`."""
    if start is None:
        return ""
    seconds = int(max(((end or datetime.now(UTC)) - start).total_seconds(), 0))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def key_values(values: Iterable[str] | None, option: str) -> dict[str, str]:
    """`KEY=VALUE` option values as a dict (a later key wins); anything else is a usage error
    naming the option (exit status 2): `Invalid value for --env: expected KEY=VALUE, got
    'X': no '='`."""
    try:
        return pairs_dict(values or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from error
