"""`kiteline build …`: create, list, view, watch, cancel and rebuild builds over the REST API."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from kiteline.cli.api import (
    NUMBER,
    PIPELINE,
    Api,
    api_command,
    builds_table,
    dump,
    dump_all,
    fields_grid,
    jobs_table,
)
from kiteline.cli.display import (
    build_state,
    duration,
    first_line,
    job_label,
    key_values,
    shown_jobs,
    state_text,
    when,
)
from kiteline.cli.output import console, errors
from kiteline.client import Build, Client

app = typer.Typer(
    rich_markup_mode=None, help="Create, list, view and watch builds", no_args_is_help=True
)

WATCH = typer.Option(
    False, "--watch", help="Follow the build until it finishes; exit 0 only if it passed."
)
#: Polls start this far apart while jobs change, backing off to the maximum while nothing does.
POLL_SECONDS = 1.0
MAX_POLL_SECONDS = 5.0


@app.command("create")
@api_command()
def create(
    api: Api,
    pipeline: str = PIPELINE,
    commit: str = typer.Option("HEAD", "--commit", help="The commit to build."),
    branch: str = typer.Option("main", "--branch", help="The branch the commit is on."),
    message: str | None = typer.Option(None, "--message", help="The build's message."),
    env: list[str] | None = typer.Option(None, "--env", help="KEY=VALUE for every job (repeat)."),
    meta_data: list[str] | None = typer.Option(
        None, "--meta-data", help="KEY=VALUE build meta-data (repeat)."
    ),
    watch: bool = WATCH,
) -> None:
    """Start a build of a pipeline."""
    variables = key_values(env, "--env")
    meta = key_values(meta_data, "--meta-data")
    with api.connect() as client:
        build = client.trigger_build(
            pipeline,
            commit,
            branch,
            message=message,
            env=variables or None,
            meta_data=meta or None,
        )
        _started(api, client, pipeline, build, what="Created", watch=watch)


@app.command("list")
@api_command()
def list_builds(
    api: Api,
    pipeline: str | None = typer.Argument(
        None, help="Only this pipeline's builds [default: the organization's, else all]."
    ),
    state: list[str] | None = typer.Option(None, "--state", help="Only in this state (repeat)."),
    branch: list[str] | None = typer.Option(None, "--branch", help="Only of this branch (repeat)."),
    limit: int = typer.Option(30, "--limit", min=1, help="How many, newest first."),
) -> None:
    """The newest builds of a pipeline, of the organization, or of every organization."""
    with api.connect() as client:
        found = client.builds(
            pipeline,
            # Without a pipeline, the default organization narrows the list to its builds.
            org=client.config.org,
            state=state or None,
            branch=branch or None,
            per_page=min(limit, 100),
        )
        builds = list(islice(found, limit))
    api.show(
        dump_all("builds", builds),
        view=lambda: builds_table(builds) if builds else "no builds",
    )


@app.command("view")
@api_command()
def view(api: Api, pipeline: str = PIPELINE, number: int = NUMBER) -> None:
    """A build's details and its jobs."""
    with api.connect() as client:
        build = client.build(pipeline, number)
    api.show(dump(build), view=lambda: _details(pipeline, build))


@app.command("watch")
@api_command()
def watch(api: Api, pipeline: str = PIPELINE, number: int = NUMBER) -> None:
    """Follow a build's jobs until it finishes; exit status 0 if it passed, else 1.

    A build waiting at a block step ends the watch too, with exit status 1."""
    with api.connect() as client:
        raise typer.Exit(_watch(api, client, pipeline, number))


@app.command("cancel")
@api_command()
def cancel(api: Api, pipeline: str = PIPELINE, number: int = NUMBER) -> None:
    """Cancel a scheduled, running or failing build."""
    with api.connect() as client:
        build = client.cancel_build(pipeline, number)
    api.show(dump(build), view=lambda: _headline(pipeline, build))


@app.command("rebuild")
@api_command()
def rebuild(api: Api, pipeline: str = PIPELINE, number: int = NUMBER, watch: bool = WATCH) -> None:
    """Run a build again, as a new build."""
    with api.connect() as client:
        build = client.rebuild_build(pipeline, number)
        what = f"Rebuilt #{number} as"
        _started(api, client, pipeline, build, what=what, watch=watch)


def _started(
    api: Api, client: Client, pipeline: str, build: Build, *, what: str, watch: bool
) -> None:
    """Print the new build; with `--watch`, follow it and exit with its outcome."""
    announcement = _announce(what, pipeline, build)
    if not watch:
        api.show(dump(build), view=lambda: announcement)
        return
    if not api.as_json:
        console.print(announcement)
    raise typer.Exit(_watch(api, client, pipeline, build.number))


def _watch(api: Api, client: Client, pipeline: str, number: int) -> int:
    """Wait for the build, live on the console unless `--json` (then only the final build is
    printed); the exit status: 0 if it passed, else 1."""
    if api.as_json:
        build = _wait(client, pipeline, number)
        api.show(dump(build), view=lambda: _headline(pipeline, build))
    else:
        display = _WatchDisplay(pipeline)
        with Live(display, console=console, refresh_per_second=4):
            build = _wait(client, pipeline, number, on_progress=display.update)
        if not console.is_terminal:  # Rich ends the display's last line on terminals only
            console.line()
    for line in unblock_hints(pipeline, build):
        (errors if api.as_json else console).print(line, soft_wrap=True)
    return 0 if build_state(build) == "passed" else 1


def unblock_hints(pipeline: str, build: Build) -> list[Text]:
    """For each block step the build waits at, the command that unblocks it."""
    hints = []
    for job in build.jobs:
        if job.type != "manual" or job.state != "blocked":
            continue
        fields = [str(field["key"]) for field in job.fields if field.get("key")]
        command = f"kiteline job unblock {pipeline} {build.number} {job.id}"
        command += "".join(f" --field {key}=VALUE" for key in fields)
        hints.append(
            Text.assemble(
                (f"{job_label(job)} is waiting to be unblocked: ", "magenta"), (command, "bold")
            )
        )
    return hints


def _wait(
    client: Client,
    pipeline: str,
    number: int,
    on_progress: Callable[[Build], object] | None = None,
) -> Build:
    return client.wait_for_build(
        pipeline,
        number,
        timeout=None,
        poll_interval=POLL_SECONDS,
        max_poll_interval=MAX_POLL_SECONDS,
        on_progress=on_progress,
    )


class _WatchDisplay:
    """The build's headline, its jobs and a bar of finished jobs; drawn afresh on every
    refresh so that running jobs' times tick."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.build: Build | None = None
        self.progress = Progress(
            TextColumn("jobs"), BarColumn(), MofNCompleteColumn(), console=console
        )
        self.task = self.progress.add_task("jobs", total=None)

    def update(self, build: Build) -> None:
        self.build = build
        jobs = shown_jobs(build)
        finished = sum(1 for job in jobs if job.finished)
        self.progress.update(self.task, completed=finished, total=len(jobs) or None)

    def __rich__(self) -> RenderableType:
        if self.build is None:
            return Text(f"Waiting for {self.pipeline}…")
        return Group(
            _headline(self.pipeline, self.build), jobs_table(shown_jobs(self.build)), self.progress
        )


def _headline(pipeline: str, build: Build) -> Text:
    took = duration(build.started_at, build.finished_at)
    return Text.assemble(
        (f"{pipeline} #{build.number} ", "bold"),
        state_text(build_state(build)),
        f" {took}" if took else "",
    )


def _announce(what: str, pipeline: str, build: Build) -> Text:
    line = Text.assemble(f"{what} ", (f"{pipeline} #{build.number}", "bold"))
    if build.web_url:
        line.append(f" {build.web_url}")
    return line


def _details(pipeline: str, build: Build) -> RenderableType:
    author = build.author
    author_name = author.get("name") if isinstance(author, dict) else author
    creator = build.creator.name if build.creator else None
    grid = fields_grid(
        [
            ("Message", first_line(build.message)),
            ("Branch", build.branch),
            ("Commit", build.commit),
            ("Author", str(author_name) if author_name else creator),
            ("Source", build.source),
            ("Created", when(build.created_at)),
            ("Started", when(build.started_at)),
            ("Finished", when(build.finished_at)),
            ("URL", build.web_url),
        ]
    )
    return Group(_headline(pipeline, build), grid, Text(), jobs_table(shown_jobs(build)))
