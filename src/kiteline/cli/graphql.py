"""`kiteline graphql`: one GraphQL query or mutation, its data printed as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.json import JSON

from kiteline.cli.api import JSON_OPTION, TOKEN, URL, connect, read_text, show
from kiteline.cli.display import key_values


def graphql(
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
    url: str | None = URL,
    token: str | None = TOKEN,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a GraphQL query or mutation and print its data."""
    if file is not None:
        if query is not None:
            raise typer.BadParameter("give the query as an argument or with --file, not both")
        query = read_text(file)
    elif query is None:
        raise typer.BadParameter("give the query as an argument, or with --file")
    variables = {name: _value(text) for name, text in key_values(var, "--var").items()}
    with connect(url, token, None) as client:
        data = client.graphql(query, variables)
    show(data, as_json=as_json, view=lambda: JSON.from_data(data))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
