"""The `kiteline` command: one module per command group, composed here."""

from __future__ import annotations

import os
import sys

import typer
from pydantic import ValidationError

from kiteline.cli import (
    artifacts,
    builds,
    graphql,
    jobs,
    login,
    output,
    pipelines,
    schedules,
    webhook,
)
from kiteline.cli.agent import app as agent_app

#: The commands that only talk to a server over HTTP. They are built without the rest, so that
#: an agent or an API call never imports the server (FastAPI, SQLAlchemy): that would take
#: seconds per command.
CLIENT_COMMANDS = frozenset(
    {"agent", "artifact", "build", "graphql", "job", "login", "pipeline", "schedule", "webhook"}
)


def build_app(*, client_only: bool = False) -> typer.Typer:
    """The command tree; with `client_only`, only the `CLIENT_COMMANDS`."""
    app = typer.Typer(
        rich_markup_mode=None,
        name="kiteline",
        help="Kiteline: a self-hosted CI/CD server that speaks Buildkite's APIs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_global_options)
    app.add_typer(agent_app, name="agent")
    app.add_typer(builds.app, name="build")
    app.add_typer(jobs.app, name="job")
    app.add_typer(artifacts.app, name="artifact")
    app.add_typer(pipelines.app, name="pipeline")
    app.add_typer(schedules.app, name="schedule")
    app.command("graphql")(graphql.graphql)
    app.command("login")(login.login)
    app.add_typer(webhook.app, name="webhook")
    if client_only:
        return app
    from kiteline.cli import admin, db, run, server, up, worker

    app.command("server", help="Serve the APIs, the web UI, /healthz and /metrics on one port.")(
        server.serve
    )
    app.command("worker", help="Run the background sweeps apart from the server.")(worker.work)
    app.command("up", help="Server and agents in one process tree, zero configuration.")(up.up)
    app.command("run", help=run.HELP, short_help="Run a pipeline on this machine.")(run.run)
    app.add_typer(admin.app, name="admin")
    app.add_typer(db.app, name="db")
    return app


GLOBAL_OPTIONS = ("--data-dir", "--database-url")
#: Global flags (no value), hoisted like the options.
GLOBAL_FLAGS = ("-v", "--verbose")


def _global_options(
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Data directory (default ./.kiteline, or KITELINE_DATA_DIR)."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Database URL (default SQLite in the data dir, or KITELINE_DATABASE_URL).",
    ),
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="Say what was decided on the way (e.g. which server)."
    ),
) -> None:
    """Export the global options as KITELINE_* so the settings, and every process a command
    starts, see them."""
    output.verbose = verbose
    if data_dir is not None:
        os.environ["KITELINE_DATA_DIR"] = data_dir
    if database_url is not None:
        os.environ["KITELINE_DATABASE_URL"] = database_url


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let `--data-dir`/`--database-url` stand anywhere (`kiteline server --data-dir X`) by
    moving them in front of the command, where the root callback reads them."""
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS:
            hoisted.append(arg)
        elif name in GLOBAL_OPTIONS:
            if "=" in arg:
                hoisted.append(arg)
            else:
                hoisted.extend(argv[index : index + 2])
                index += 1
        else:
            rest.append(arg)
        index += 1
    return hoisted + rest


def main() -> None:
    args = hoist_global_options(sys.argv[1:])
    try:
        build_app(client_only=_command_name(args) in CLIENT_COMMANDS)(
            args=args, prog_name="kiteline"
        )
    except ValidationError as error:
        if error.title != "Settings":  # KITELINE_* variables, read by server-side commands
            raise
        from kiteline.settings import describe_settings_error

        sys.exit(f"kiteline: {describe_settings_error(error)}")


def _command_name(args: list[str]) -> str | None:
    """The first word after the (hoisted) global options."""
    index = 0
    while index < len(args):
        if args[index] in GLOBAL_FLAGS:
            index += 1
        elif args[index].split("=", 1)[0] in GLOBAL_OPTIONS:
            index += 1 if "=" in args[index] else 2
        else:
            break
    return args[index] if index < len(args) else None
