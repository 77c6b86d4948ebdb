"""What the API client commands share: a `Client` made from `--url`/`--token`/`--org` (or
what `kiteline.cli.credentials` finds), any failure as one red line and exit status 1,
`--json` output, and tables of builds and jobs that widen rather than cut ids and paths.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from inspect import Parameter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from pydantic import BaseModel
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from kiteline.cli import credentials, output
from kiteline.cli.display import (
    build_state,
    duration,
    first_line,
    job_label,
    job_state,
    state_text,
    when,
)
from kiteline.cli.output import errors, fail, show
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
    help="A Kiteline server's URL [env: KITELINE_URL; else .kiteline/credentials.json, else "
    "`kiteline login`'s; else api.buildkite.com].",
    show_default=False,
)
TOKEN = typer.Option(
    None,
    "--token",
    help="API access token [env: KITELINE_TOKEN with a Kiteline URL; else the stored one; "
    "else BUILDKITE_API_TOKEN].",
    show_default=False,
)
ORG = typer.Option(
    None,
    "--org",
    help="Organization slug [env: KITELINE_ORG; else the stored one; else "
    "BUILDKITE_ORGANIZATION_SLUG].",
    show_default=False,
)
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object.")
PIPELINE = typer.Argument(..., help="The pipeline's slug.")
NUMBER = typer.Argument(..., help="The build's number.")

Command = Callable[..., None]


@dataclass(frozen=True)
class Api:
    """What every API command is given by `--url`, `--token`, `--org` and `--json`."""

    url: str | None
    token: str | None
    org: str | None
    as_json: bool

    def connect(self) -> AbstractContextManager[Client]:
        return connect(self.url, self.token, self.org)

    def show(self, data: dict[str, Any], *, view: Callable[[], RenderableType]) -> None:
        show(data, as_json=self.as_json, view=view)


def api_command(*, org: bool = True, json: bool = True) -> Callable[[Command], Command]:
    """A command `function(api, ...)` as Typer's command with `--url`, `--token`, `--org`
    (unless `org=False`) and `--json` (unless `json=False`) after its own options, given to
    it as one `Api`:

        @app.command("list")
        @api_command()
        def list_pipelines(api: Api) -> None: ..."""
    shared = [
        Parameter(name, Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, default, annotation in (
            ("url", URL, str | None),
            ("token", TOKEN, str | None),
            ("org", ORG, str | None),
            ("as_json", JSON_OPTION, bool),
        )
        if (org or name != "org") and (json or name != "as_json")
    ]

    def wrap(function: Command) -> Command:
        own = list(inspect.signature(function, eval_str=True).parameters.values())[1:]

        @functools.wraps(function)
        def command(**values: Any) -> None:
            api = Api(
                url=values.pop("url"),
                token=values.pop("token"),
                org=values.pop("org", None),
                as_json=values.pop("as_json", False),
            )
            function(api, **values)

        parameters = own + shared
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # Typer reads the signature above, not the function's
        return command

    return wrap


# -- the client and its failures ------------------------------------------------------------


@contextmanager
def connect(url: str | None, token: str | None, org: str | None) -> Iterator[Client]:
    """A client for one command; whatever the SDK raises ends the command with one red line
    and exit status 1, never a traceback."""
    found = credentials.resolve(url, token, org)
    try:
        client = Client(found.url, found.token, org=found.org)
    except ConfigurationError as error:
        raise fail(
            "no API token: run `kiteline up` here first (it keeps .kiteline/credentials.json), "
            "or `kiteline login URL`, or pass --url and --token (or set KITELINE_URL and "
            "KITELINE_TOKEN); BUILDKITE_API_TOKEN talks to api.buildkite.com"
        ) from error
    if output.verbose:
        where = client.config.rest_url.removesuffix("/v2")
        org_shown = client.config.org or "no default organization"
        errors.print(
            Text(f"Using {where} as {org_shown}, from {found.source}", style="dim"),
            soft_wrap=True,
        )
    try:
        with client:
            yield client
    except (KitelineClientError, OSError) as error:
        raise fail(describe(error)) from error


def describe(error: Exception) -> str:
    """The server's own message, its validation details, and what was asked of whom."""
    if isinstance(error, ApiError):
        where = ""
        if error.url:
            parts = urlsplit(error.url)
            where = f", {error.method} {parts.scheme}://{parts.netloc}{parts.path}"
        return f"{refusal(error)} ({error.status}{where})"
    if isinstance(error, GraphQLError):
        return f"GraphQL: {error}"
    if isinstance(error, ConfigurationError) and str(error).startswith("no organization"):
        return "no organization: pass --org, or set KITELINE_ORG or BUILDKITE_ORGANIZATION_SLUG"
    return str(error)


def refusal(error: ApiError) -> str:
    """The server's message and its validation details: `Validation Failed: version required`."""
    if isinstance(error, Unprocessable) and error.errors:
        details = "; ".join(f"{e.get('field')} {e.get('code')}" for e in error.errors)
        return f"{error.message}: {details}"
    return error.message


# -- output ---------------------------------------------------------------------------------


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
        raise fail(f"could not read {path}: {error.strerror}") from error


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
            state_text(job_state(job)),
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
