"""`kiteline schedule …`: list, create, update and delete a pipeline's schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from kiteline.cli.api import PIPELINE, Api, api_command
from kiteline.cli.display import key_values
from kiteline.client import Client

app = typer.Typer(
    rich_markup_mode=None,
    help="List, create, update and delete pipeline schedules (builds on a cron timetable)",
    no_args_is_help=True,
)

SCHEDULE = typer.Argument(..., help="The schedule's UUID (or GraphQL id).")
CRONLINE_HELP = (
    "Five cron fields or @hourly/@daily/@weekly/@monthly/@yearly, then an optional time zone: "
    "'0 3 * * 1-5 Europe/Berlin'."
)
# The fields `create` and `update` both take; left out, `update` leaves them as they are.
Label = Annotated[str | None, typer.Option("--label", help="What the schedule is for.")]
Branch = Annotated[
    str | None, typer.Option("--branch", help="The branch to build [create: the default one].")
]
Commit = Annotated[str | None, typer.Option("--commit", help="The commit [create: HEAD].")]
Message = Annotated[str | None, typer.Option("--message", help="The builds' message.")]
Env = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="KEY=VALUE", help="A build environment variable (repeat)."),
]


def _fields(
    label: str | None,
    branch: str | None,
    commit: str | None,
    message: str | None,
    env: list[str] | None,
) -> dict[str, Any]:
    """The given fields as the client takes them (`None`: not given)."""
    variables = key_values(env, "--env") or None
    return {
        "label": label,
        "branch": branch,
        "commit": commit,
        "message": message,
        "env": variables,
    }


def _save(api: Api, verb: str, save: Callable[[Client], dict[str, Any]]) -> None:
    with api.connect() as client:
        schedule = save(client)
    api.show(
        {"schedule": schedule},
        view=lambda: (
            f"{verb} schedule {schedule['uuid']}: {schedule['cronline']}, next build "
            f"{schedule['nextBuildAt'] or '(disabled)'}"
        ),
    )


def _table(schedules: list[dict[str, Any]]) -> Table:
    table = Table(box=None)
    for column in ("UUID", "LABEL", "CRONLINE", "BRANCH", "ENABLED", "NEXT BUILD"):
        table.add_column(column)
    for schedule in schedules:
        table.add_row(
            schedule["uuid"],
            schedule["label"] or "",
            schedule["cronline"],
            schedule["branch"] or "(default branch)",
            "yes" if schedule["enabled"] else "no",
            schedule["nextBuildAt"] or "-",
        )
    return table


@app.command("list")
@api_command()
def list_schedules(api: Api, pipeline: str = PIPELINE) -> None:
    """The pipeline's schedules."""
    with api.connect() as client:
        schedules = client.schedules(pipeline)
    api.show(
        {"schedules": schedules},
        view=lambda: _table(schedules) if schedules else "no schedules",
    )


@app.command("create")
@api_command()
def create(
    api: Api,
    pipeline: str = PIPELINE,
    cronline: str = typer.Option(..., "--cronline", help=CRONLINE_HELP),
    label: Label = None,
    branch: Branch = None,
    commit: Commit = None,
    message: Message = None,
    env: Env = None,
    disabled: bool = typer.Option(False, "--disabled", help="Create it switched off."),
) -> None:
    """A new schedule of the pipeline."""
    fields = _fields(label, branch, commit, message, env)
    _save(
        api,
        "created",
        lambda client: client.create_schedule(
            pipeline, cronline=cronline, enabled=not disabled, **fields
        ),
    )


@app.command("update")
@api_command()
def update(
    api: Api,
    schedule: str = SCHEDULE,
    cronline: str | None = typer.Option(None, "--cronline", help=CRONLINE_HELP),
    label: Label = None,
    branch: Branch = None,
    commit: Commit = None,
    message: Message = None,
    env: Env = None,
    enabled: bool | None = typer.Option(None, "--enabled/--disabled"),
) -> None:
    """Change the given fields of a schedule."""
    fields = _fields(label, branch, commit, message, env)
    _save(
        api,
        "updated",
        lambda client: client.update_schedule(
            schedule, cronline=cronline, enabled=enabled, **fields
        ),
    )


@app.command("delete")
@api_command(json=False)
def delete(api: Api, schedule: str = SCHEDULE) -> None:
    """Delete a schedule; builds it made stay."""
    with api.connect() as client:
        client.delete_schedule(schedule)
    typer.echo(f"deleted schedule {schedule}")
