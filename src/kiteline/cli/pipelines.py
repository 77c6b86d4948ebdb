"""`kiteline pipeline …`: list, view and create an organization's pipelines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import typer
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from kiteline.cli.api import (
    JSON_OPTION,
    Api,
    api_command,
    dump,
    dump_all,
    fields_grid,
    read_text,
)
from kiteline.cli.output import console, errors
from kiteline.client import Pipeline
from kiteline.pipeline import PipelineError, check_pipeline

app = typer.Typer(
    rich_markup_mode=None, help="List, view, create and validate pipelines", no_args_is_help=True
)


@app.command("list")
@api_command()
def list_pipelines(api: Api) -> None:
    """Every pipeline of the organization."""
    with api.connect() as client:
        pipelines = list(client.pipelines())
    api.show(
        dump_all("pipelines", pipelines),
        view=lambda: _table(pipelines) if pipelines else "no pipelines",
    )


@app.command("view")
@api_command()
def view(api: Api, slug: str = typer.Argument(..., help="The pipeline's slug.")) -> None:
    """A pipeline's settings and its steps."""
    with api.connect() as client:
        pipeline = client.pipeline(slug)
    api.show(dump(pipeline), view=lambda: _details(pipeline))


@app.command("create")
@api_command()
def create(
    api: Api,
    name: str = typer.Argument(..., help="The pipeline's name (its slug is made from it)."),
    config: Path = typer.Option(
        ..., "--config", help="The steps: a pipeline.yml file, or - for stdin."
    ),
    repository: str | None = typer.Option(
        None, "--repository", help="The Git repository agents check out."
    ),
) -> None:
    """Create a pipeline from a YAML configuration."""
    configuration = read_text(config)
    with api.connect() as client:
        pipeline = client.create_pipeline(name, configuration=configuration, repository=repository)
    api.show(
        dump(pipeline),
        view=lambda: Text.assemble("Created pipeline ", (pipeline.slug, "bold")),
    )


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="The pipeline file (YAML or JSON), or - for stdin."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a pipeline file here, as the server checks a pipeline's steps when it is created
    or changed: every step, and every depends_on against the file's step keys.

    Exit status 0 when it is valid, 1 listing every problem."""
    text = read_text(file)
    try:
        steps = len(check_pipeline(text).steps)
    except PipelineError as error:
        issues = [
            {"where": issue.where, "path": issue.path, "message": issue.message}
            for issue in error.issues
        ]
        if as_json:
            typer.echo(json.dumps({"valid": False, "issues": issues}))
        else:
            for issue in error.issues:
                errors.print(Text(f"{file}: {issue}", style="red"), soft_wrap=True)
        raise typer.Exit(1) from error
    if as_json:
        typer.echo(json.dumps({"valid": True, "issues": []}))
    else:
        console.print(Text(f"{file}: valid, {steps} top-level step(s)"), soft_wrap=True)


def _table(pipelines: Iterable[Pipeline]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("Slug", "Name", "Repository", "Default branch"):
        table.add_column(column)
    for pipeline in pipelines:
        table.add_row(
            Text(pipeline.slug),
            Text(pipeline.name or ""),
            Text(pipeline.repository or ""),
            Text(pipeline.default_branch or ""),
        )
    return table


def _details(pipeline: Pipeline) -> RenderableType:
    grid = fields_grid(
        [
            ("Slug", pipeline.slug),
            ("Name", pipeline.name),
            ("Description", pipeline.description),
            ("Repository", pipeline.repository),
            ("Default branch", pipeline.default_branch),
            ("URL", pipeline.web_url),
        ]
    )
    if not pipeline.configuration:
        return grid
    return Group(grid, Text(), Syntax(pipeline.configuration, "yaml", background_color="default"))
