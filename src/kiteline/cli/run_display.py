"""What `kiteline run` shows while the build runs: a live table of its jobs, each job's log as
it arrives, a line as each job finishes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kiteline.client.models import FINISHED_JOB_STATES

#: REST job states after which nothing more happens to the job (an unblocked block step too).
FINISHED_STATES = FINISHED_JOB_STATES | {"unblocked"}
STATE_STYLES = {
    "passed": "green",
    "unblocked": "green",
    "failed": "bold red",
    "timed_out": "bold red",
    "broken": "red",
    "expired": "red",
    "waiting_failed": "red",
    "blocked_failed": "red",
    "unblocked_failed": "red",
    "running": "yellow",
    "canceling": "yellow",
    "timing_out": "yellow",
    "assigned": "yellow",
    "accepted": "yellow",
    "blocked": "bold magenta",
    "canceled": "bright_black",
    "skipped": "bright_black",
}
BUILD_STYLES = {
    "passed": "bold green",
    "failed": "bold red",
    "canceled": "bold yellow",
    "blocked": "bold magenta",
}
MARKS = {"passed": "✔ ", "unblocked": "✔ ", "canceled": "■ ", "skipped": "- "}
SECTION_HEADER = re.compile(r"^(~~~|---|\+\+\+) ")
# Escapes Rich does not draw: Buildkite's APC timestamps and OSC links/commands.
NON_SGR_ESCAPES = re.compile(r"\x1b[_\]][^\x07\x1b]*(\x07|\x1b\\)")


def job_label(job: dict[str, Any]) -> str:
    label = job.get("label") or job.get("name")
    if label:
        return str(label)
    if job.get("type") == "manual":
        return "Block"
    first_line = str(job.get("command") or "").strip().splitlines()
    return first_line[0] if first_line else str(job.get("step_key") or job["id"])


def shown_jobs(build: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs worth a row: every job but the wait steps."""
    return [job for job in build.get("jobs", []) if job.get("type") != "waiter"]


def duration(start: str | None, end: str | None, *, now: datetime | None = None) -> str:
    if not start:
        return ""
    began = datetime.fromisoformat(start)
    ended = datetime.fromisoformat(end) if end else (now or datetime.now(UTC))
    seconds = max((ended - began).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def styled_state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, "bright_black"))


class _JobsTable:
    """Rendered afresh on every refresh, so running jobs' durations tick."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.build: dict[str, Any] | None = None

    def __rich__(self) -> RenderableType:
        build = self.build or {}
        state = "blocked" if build.get("blocked") else str(build.get("state", "creating"))
        table = Table(
            title=Text.assemble(self.title, " ", Text(state, style=BUILD_STYLES.get(state, ""))),
            title_justify="left",
            expand=False,
        )
        table.add_column("Job", no_wrap=True, overflow="ellipsis", max_width=60)
        table.add_column("State")
        table.add_column("Time", justify="right")
        table.add_column("Exit", justify="right")
        for job in shown_jobs(build):
            exit_status = job.get("exit_status")
            label = Text(job_label(job), style="strike" if job.get("retried") else "")
            table.add_row(
                label,
                styled_state(str(job["state"])),
                duration(job.get("started_at"), job.get("finished_at")),
                "" if exit_status is None else str(exit_status),
            )
        return table


class BuildView:
    """The live table plus the logs printed above it."""

    def __init__(self, console: Console, *, title: str) -> None:
        self.console = console
        self._table = _JobsTable(title)
        self._live = Live(
            self._table,
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._printed: dict[str, int] = {}
        self._speaking: str | None = None
        self._announced: set[str] = set()

    def __enter__(self) -> BuildView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def update(self, build: dict[str, Any]) -> None:
        self._table.build = build
        self._live.refresh()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The table out of the way while someone types at a prompt."""
        self._stop()
        self._speaking = None
        try:
            yield
        finally:
            self._live.start()

    def _stop(self) -> None:
        self._live.stop()
        if not self.console.is_terminal:  # Rich ends the table's last line on terminals only
            self.console.line()

    def log(self, job: dict[str, Any], content: bytes, *, complete: bool) -> None:
        """Print what of `content` is new; a running job's last partial line waits."""
        shown = self._printed.get(job["id"], 0)
        new = content[shown:]
        if not complete:
            new = new[: new.rfind(b"\n") + 1]
        if not new:
            return
        self._printed[job["id"]] = shown + len(new)
        if self._speaking != job["id"]:
            self.console.rule(Text(job_label(job), style="bold"), align="left")
            self._speaking = job["id"]
        for line in new.decode("utf-8", "replace").splitlines():
            self.console.print(_log_line(line), soft_wrap=True)

    def finished(self, job: dict[str, Any]) -> None:
        """One line when a job ends (once per job; an unblock has said its own)."""
        if job["id"] in self._announced or job["state"] == "unblocked":
            return
        self._announced.add(job["id"])
        state = str(job["state"])
        line = Text.assemble(
            (MARKS.get(state, "✘ "), STATE_STYLES.get(state, "")),
            (job_label(job), "bold"),
            " ",
            styled_state(state),
        )
        if job.get("exit_status") is not None and state != "passed":
            line.append(f" (exit status {job['exit_status']})")
        if job.get("started_at"):
            line.append(f" in {duration(job['started_at'], job.get('finished_at'))}")
        self.console.print(line, soft_wrap=True)
        self._speaking = None

    def say(self, message: str, *, style: str = "") -> None:
        self.console.print(Text(message, style=style), soft_wrap=True)
        self._speaking = None


def _log_line(line: str) -> Text:
    text = Text.from_ansi(NON_SGR_ESCAPES.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]))
    if SECTION_HEADER.match(text.plain):
        text.stylize("bold cyan")
    return text
