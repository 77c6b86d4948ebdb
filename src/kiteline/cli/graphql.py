"""`kiteline graphql`: one GraphQL query or mutation, its data printed as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.json import JSON

from kiteline.cli.api import Api, api_command, read_text
from kiteline.cli.display import key_values


@api_command(org=False)
def graphql(
    api: Api,
    query: str | None = typer.Argument(
        None, help="The query [default: the --file's].", show_default=False
    ),
    var: list[str] | None = typer.Option(
        None,
        "--var",
        help="NAME=VALUE, a variable (repeat); VALUE is taken as JSON when it parses, else as "
        "a string.",
    ),
    file: Path | None = typer.Option(
        None, "--file", help="Read the query from this file (- for stdin)."
    ),
) -> None:
    """Run a GraphQL query or mutation and print its data."""
    if file is not None:
        if query is not None:
            raise typer.BadParameter("give the query as an argument or with --file, not both")
        query = read_text(file)
    elif query is None:
        raise typer.BadParameter("give the query as an argument, or with --file")
    variables = {name: _value(text) for name, text in key_values(var, "--var").items()}
    with api.connect() as client:
        data = client.graphql(query, variables)
    api.show(data, view=lambda: JSON.from_data(data))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
