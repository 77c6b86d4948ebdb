"""What the API client commands share: a `Client` made from `--url`/`--token`/`--org`, any
failure as one red line and exit status 1, `--json` output, and tables of builds, jobs and
states in colour.

The options are resolved by the SDK, not by Typer's `envvar`: KITELINE_URL picks a Kiteline
server, and without it the commands talk to api.buildkite.com with BUILDKITE_API_TOKEN, never
sending KITELINE_TOKEN there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from pydantic import BaseModel
from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kiteline.cli.output import console, errors
from kiteline.client import (
    ApiError,
    Client,
    ConfigurationError,
    GraphQLError,
    KitelineClientError,
    Unprocessable,
)
from kiteline.client.models import Build, Job

URL = typer.Option(
    None,
    "--url",
    help="A Kiteline server's URL [env: KITELINE_URL]; without one, api.buildkite.com.",
    show_default=False,
)
TOKEN = typer.Option(
    None,
    "--token",
    help="API access token [env: KITELINE_TOKEN with a Kiteline URL, else BUILDKITE_API_TOKEN].",
    show_default=False,
)
ORG = typer.Option(
    None,
    "--org",
    help="Organization slug [env: KITELINE_ORG or BUILDKITE_ORGANIZATION_SLUG].",
    show_default=False,
)
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object.")
PIPELINE = typer.Argument(..., help="The pipeline's slug.")
NUMBER = typer.Argument(..., help="The build's number.")

STATE_STYLES = {
    "passed": "green",
    "unblocked": "green",
    "finished": "green",
    "connected": "green",
    "failed": "red",
    "failing": "red",
    "broken": "red",
    "canceled": "red",
    "canceling": "red",
    "timed_out": "red",
    "timing_out": "red",
    "expired": "red",
    "waiting_failed": "red",
    "blocked_failed": "red",
    "unblocked_failed": "red",
    "error": "red",
    "lost": "red",
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
    "blocked": "cyan",
}
#: States not named above (skipped, not_run, waiting, pending, disconnected...) are dim.
OTHER_STATE_STYLE = "bright_black"


# -- the client and its failures ------------------------------------------------------------


@contextmanager
def connect(url: str | None, token: str | None, org: str | None) -> Iterator[Client]:
    """A client for one command; whatever the SDK raises ends the command with one red line
    and exit status 1, never a traceback."""
    try:
        client = Client(url, token, org=org)
    except ConfigurationError as error:
        raise failure(
            "no API token: pass --token, or set KITELINE_TOKEN (with --url or KITELINE_URL), "
            "or BUILDKITE_API_TOKEN for api.buildkite.com"
        ) from error
    try:
        with client:
            yield client
    except (KitelineClientError, OSError) as error:
        raise failure(describe(error)) from error


def describe(error: Exception) -> str:
    """The server's own message, its validation details, and what was asked of whom."""
    if isinstance(error, ApiError):
        details = ""
        if isinstance(error, Unprocessable) and error.errors:
            details = ": " + "; ".join(f"{e.get('field')} {e.get('code')}" for e in error.errors)
        where = ""
        if error.url:
            parts = urlsplit(error.url)
            where = f", {error.method} {parts.scheme}://{parts.netloc}{parts.path}"
        return f"{error.message}{details} ({error.status}{where})"
    if isinstance(error, GraphQLError):
        return f"GraphQL: {error}"
    if isinstance(error, ConfigurationError) and str(error).startswith("no organization"):
        return "no organization: pass --org, or set KITELINE_ORG or BUILDKITE_ORGANIZATION_SLUG"
    return str(error)


def failure(message: str) -> typer.Exit:
    """One line on stderr, however long (Rich would wrap it) and whatever brackets it holds."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


# -- output ---------------------------------------------------------------------------------


def show(data: dict[str, Any], *, as_json: bool, view: Callable[[], RenderableType]) -> None:
    """`data` as one JSON object with `--json`, else `view()` for people."""
    if as_json:
        typer.echo(json.dumps(data))
    else:
        console.print(view())


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def dump_all(name: str, models: Iterable[BaseModel]) -> dict[str, Any]:
    """A list as the one JSON object `--json` prints: `{"builds": [...]}`."""
    return {name: [dump(model) for model in models]}


def read_text(path: Path) -> str:
    """A file's text, or stdin's for `-`; a file that cannot be read ends the command."""
    try:
        return typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
    except OSError as error:
        raise failure(f"could not read {path}: {error.strerror}") from error


def key_values(values: list[str] | None, option: str) -> dict[str, str]:
    """`K=V` option values as a dict; anything else is a usage error naming the option."""
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        pairs[key] = rest
    return pairs


def state_text(state: str | None) -> Text:
    shown = state or "unknown"
    return Text(shown, style=STATE_STYLES.get(shown, OTHER_STATE_STYLE))


def build_state(build: Build) -> str:
    """The state to show: a build waiting at a block step is `blocked` (Buildkite's REST says
    `passed` with `blocked: true`)."""
    if build.blocked and build.state != "failed":
        return "blocked"
    return build.state or "unknown"


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long from `start` to `end` (or until now, while it runs)."""
    if start is None:
        return ""
    seconds = int(max(((end or datetime.now(UTC)) - start).total_seconds(), 0))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


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


def builds_table(builds: Iterable[Build]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("Pipeline", "#", "State", "Branch", "Commit", "Message", "Created", "Took"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for build in builds:
        table.add_row(
            Text(build.pipeline.slug if build.pipeline else ""),
            str(build.number),
            state_text(build_state(build)),
            Text(build.branch or ""),
            Text((build.commit or "")[:10]),
            Text(first_line(build.message), overflow="ellipsis", no_wrap=True),
            when(build.created_at),
            duration(build.started_at, build.finished_at),
        )
    return table


def jobs_table(jobs: Iterable[Job]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("Job")
    table.add_column("State")
    table.add_column("Exit", justify="right")
    table.add_column("Took", justify="right")
    table.add_column("ID", no_wrap=True)
    for job in jobs:
        table.add_row(
            Text(job_label(job), style="strike" if job.retried else ""),
            state_text(job.state),
            "" if job.exit_status is None else str(job.exit_status),
            duration(job.started_at, job.finished_at),
            job.id,
        )
    return table


def fields_grid(rows: Iterable[tuple[str, str | Text | None]]) -> Table:
    """`name  value` lines, leaving out the values that are empty."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in rows:
        if value:
            grid.add_row(name, value if isinstance(value, Text) else Text(value))
    return grid
