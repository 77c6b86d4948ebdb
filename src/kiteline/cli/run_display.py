"""What `kiteline run` shows while the build runs: a live table of its jobs, each job's log in
segments under one header, the agent's checkout and plumbing folded away (shown when the job
fails, or always with `-v`), and a line as each job finishes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kiteline.cli.display import (
    FAILED_MARK,
    MARKS,
    build_state,
    duration,
    job_label,
    job_state,
    shown_jobs,
    state_style,
    state_text,
)
from kiteline.client.models import FINISHED_JOB_STATES, Build, Job

#: REST job states after which nothing more happens to the job (an unblocked block step too).
FINISHED_STATES = FINISHED_JOB_STATES | {"unblocked"}
SECTION_HEADER = re.compile(r"^(~~~|---|\+\+\+) (.*)$")
#: The sections the agent itself writes around a job's command: folded unless `-v`.
PLUMBING_SECTIONS = re.compile(
    r"^(Preparing working directory|Running agent [\w-]+ hook|Uploading artifacts)$"
)
#: The agent's header of the command's own output: the `$ command` line after it is kept.
COMMAND_SECTION = "Running commands"
#: Buildkite's log markup re-opening the section above (after an error): not for people.
REOPEN_MARKER = "^^^ +++"
#: Jobs whose end is worth showing folded lines for.
PASSING_STATES = frozenset({"passed", "soft_failed"})
#: A job keeps the screen while it has written something this recently; then another job
#: with output waiting may take it (one header per stretch of one job's output).
QUIET_SECONDS = 2.0
# Escapes Rich does not draw: Buildkite's APC timestamps and OSC links/commands.
NON_SGR_ESCAPES = re.compile(r"\x1b[_\]][^\x07\x1b]*(\x07|\x1b\\)")


class _JobsTable:
    """Rendered afresh on every refresh, so running jobs' durations tick."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.build: Build | None = None

    def __rich__(self) -> RenderableType:
        state = build_state(self.build) if self.build else "creating"
        table = Table(
            title=Text.assemble(self.title, " ", state_text(state, bold=True)),
            title_justify="left",
            expand=False,
        )
        table.add_column("Job", no_wrap=True, overflow="ellipsis", max_width=60)
        table.add_column("State")
        table.add_column("Time", justify="right")
        table.add_column("Exit", justify="right")
        for job in shown_jobs(self.build) if self.build else []:
            table.add_row(
                Text(job_label(job), style="strike" if job.retried else ""),
                state_text(job_state(job)),
                duration(job.started_at, job.finished_at),
                "" if job.exit_status is None else str(job.exit_status),
            )
        return table


@dataclass
class _JobLog:
    """One job's log as far as it has been read, and how much of it has been shown."""

    job: Job
    content: str = ""
    complete: bool = False
    shown: int = 0
    folding: bool = False
    """Inside a plumbing section."""
    folded: list[str] = field(default_factory=list)
    announced: bool = False

    def ready(self) -> str:
        """What is new and may be printed: whole lines only while the job runs."""
        new = self.content[self.shown :]
        return new if self.complete else new[: new.rfind("\n") + 1]


class BuildView:
    """The live table, with the jobs' logs and their outcomes printed above it."""

    def __init__(self, console: Console, *, title: str, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self._table = _JobsTable(title)
        self._live = Live(
            self._table,
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._logs: dict[str, _JobLog] = {}
        self._speaking: str | None = None
        """The job whose lines were printed last (its header is on screen)."""
        self._spoke_at = 0.0

    def __enter__(self) -> BuildView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def update(self, build: Build) -> None:
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

    def log(self, job: Job, content: str, *, complete: bool) -> None:
        """The job's log as read now (all of it); printed by `show_logs`."""
        entry = self._logs.setdefault(job.id, _JobLog(job))
        entry.job, entry.content, entry.complete = job, content, complete

    def show_logs(self, *, everything: bool = False) -> None:
        """Print what may be printed: the speaking job's new lines while it keeps talking,
        else the waiting output of the job that started first (`everything`: all that waits,
        one job after another); a job's end once all its log is out."""
        now = time.monotonic()
        current = self._logs.get(self._speaking or "")
        if current is not None and current.ready():
            self._print_lines(current, now)
        elif current is None or current.complete or now - self._spoke_at >= QUIET_SECONDS:
            self._print_next(now)
        while everything and self._print_next(now):
            pass
        for entry in self._logs.values():
            if entry.complete and not entry.ready() and not entry.announced:
                self._announce(entry)

    def _print_next(self, now: float) -> bool:
        waiting = [entry for entry in self._logs.values() if entry.ready()]
        if waiting:
            self._print_lines(min(waiting, key=_started), now)
        return bool(waiting)

    def _print_lines(self, entry: _JobLog, now: float) -> None:
        text = entry.ready()
        entry.shown += len(text)
        lines = [line for line in text.splitlines() if self._kept(entry, line)]
        if lines and self._speaking != entry.job.id:
            self.console.rule(Text(job_label(entry.job), style="bold"), align="left")
            self._speaking = entry.job.id
        if lines:
            self._spoke_at = now
        for line in lines:
            self.console.print(_log_line(line), soft_wrap=True)
        if entry.complete and not entry.announced:
            self._announce(entry)

    def _kept(self, entry: _JobLog, line: str) -> bool:
        """Whether a line is shown now; plumbing lines are kept aside (all shown with `-v`)."""
        plain = _plain(line)
        if plain.strip() == REOPEN_MARKER:
            return False
        if self.verbose:
            return True
        header = SECTION_HEADER.match(plain)
        if header is not None:
            title = header.group(2).strip()
            entry.folding = bool(PLUMBING_SECTIONS.match(title))
            if entry.folding or title == COMMAND_SECTION:
                entry.folded.append(line)
                return False
            return True
        if entry.folding:
            entry.folded.append(line)
            return False
        return True

    def finished(self, job: Job) -> None:
        """A job has ended: said at once when it wrote no log (block, trigger, never
        started), else once its log is all out."""
        entry = self._logs.setdefault(job.id, _JobLog(job, complete=True))
        entry.job = job
        if (job.type != "script" or job.started_at is None) and not entry.announced:
            self._announce(entry)

    def _announce(self, entry: _JobLog) -> None:
        """One line when a job ends (an unblock has said its own); a failed job's folded
        lines first, since its failure may be in them."""
        entry.announced = True
        job = entry.job
        state = job_state(job)
        if state == "unblocked":
            return
        if state not in PASSING_STATES and entry.folded:
            self.console.print(
                Text(f"The {len(entry.folded)} folded line(s) of {job_label(job)}:", style="dim")
            )
            for folded in entry.folded:
                self.console.print(_log_line(folded), soft_wrap=True)
        line = Text.assemble(
            (f"{MARKS.get(state, FAILED_MARK)} ", state_style(state)),
            (job_label(job), "bold"),
            " ",
            state_text(state),
        )
        if job.exit_status is not None and state != "passed":
            line.append(f" (exit status {job.exit_status})")
        if job.started_at:
            line.append(f" in {duration(job.started_at, job.finished_at)}")
        self.console.print(line, soft_wrap=True)
        self._speaking = None

    def say(self, message: str, *, style: str = "") -> None:
        self.console.print(Text(message, style=style), soft_wrap=True)
        self._speaking = None


def _started(entry: _JobLog) -> datetime:
    return entry.job.started_at or datetime.max.replace(tzinfo=UTC)


def _plain(line: str) -> str:
    return Text.from_ansi(NON_SGR_ESCAPES.sub("", line)).plain


def _log_line(line: str) -> Text:
    text = Text.from_ansi(NON_SGR_ESCAPES.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]))
    if SECTION_HEADER.match(text.plain):
        text.stylize("bold cyan")
    return text
