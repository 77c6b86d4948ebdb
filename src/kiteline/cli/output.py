"""How commands print: `--json` prints exactly one JSON object on stdout, else readable text;
`-v` (`verbose`) adds what a command decided on the way, on stderr."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)
#: Set by the global `-v`/`--verbose` option before any command runs.
verbose = False


def emit(data: dict[str, Any], *, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(data))
    else:
        console.print(text)


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)
