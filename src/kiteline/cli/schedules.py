"""`kiteline schedule …`: list, create, update and delete a pipeline's schedules."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from kiteline.cli.api import JSON_OPTION, ORG, PIPELINE, TOKEN, URL, connect, failure, show

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


def _env(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise failure(f"--env {pair!r}: expected KEY=value")
        env[key] = value
    return env


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


def _shown(schedule: dict[str, Any], as_json: bool, verb: str) -> None:
    show(
        {"schedule": schedule},
        as_json=as_json,
        view=lambda: (
            f"{verb} schedule {schedule['uuid']}: {schedule['cronline']}, next build "
            f"{schedule['nextBuildAt'] or '(disabled)'}"
        ),
    )


@app.command("list")
def list_schedules(
    pipeline: str = PIPELINE,
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """The pipeline's schedules."""
    with connect(url, token, org) as client:
        schedules = client.schedules(pipeline)
    show(
        {"schedules": schedules},
        as_json=as_json,
        view=lambda: _table(schedules) if schedules else "no schedules",
    )


@app.command("create")
def create(
    pipeline: str = PIPELINE,
    cronline: str = typer.Option(..., "--cronline", help=CRONLINE_HELP),
    label: str | None = typer.Option(None, "--label", help="What the schedule is for."),
    branch: str | None = typer.Option(None, "--branch", help="Default: the default branch."),
    commit: str | None = typer.Option(None, "--commit", help="Default: HEAD."),
    message: str | None = typer.Option(None, "--message", help="The builds' message."),
    env: list[str] | None = typer.Option(None, "--env", help="KEY=value, repeatable."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it switched off."),
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """A new schedule of the pipeline."""
    with connect(url, token, org) as client:
        schedule = client.create_schedule(
            pipeline,
            cronline=cronline,
            label=label,
            branch=branch,
            commit=commit,
            message=message,
            env=_env(env),
            enabled=not disabled,
        )
    _shown(schedule, as_json, "created")


@app.command("update")
def update(
    schedule: str = SCHEDULE,
    cronline: str | None = typer.Option(None, "--cronline", help=CRONLINE_HELP),
    label: str | None = typer.Option(None, "--label"),
    branch: str | None = typer.Option(None, "--branch"),
    commit: str | None = typer.Option(None, "--commit"),
    message: str | None = typer.Option(None, "--message"),
    env: list[str] | None = typer.Option(None, "--env", help="KEY=value, repeatable."),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled"),
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change the given fields of a schedule."""
    with connect(url, token, org) as client:
        changed = client.update_schedule(
            schedule,
            cronline=cronline,
            label=label,
            branch=branch,
            commit=commit,
            message=message,
            env=_env(env),
            enabled=enabled,
        )
    _shown(changed, as_json, "updated")


@app.command("delete")
def delete(
    schedule: str = SCHEDULE,
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
) -> None:
    """Delete a schedule; builds it made stay."""
    with connect(url, token, org) as client:
        client.delete_schedule(schedule)
    typer.echo(f"deleted schedule {schedule}")
