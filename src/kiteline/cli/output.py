"""How commands print: `--json` prints exactly one JSON object on stdout, else readable text;
`-v` (`verbose`) adds what a command decided on the way, on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement

console = Console()
errors = Console(stderr=True)
#: Set by the global `-v`/`--verbose` option before any command runs.
verbose = False


def show(data: dict[str, Any], *, as_json: bool, view: Callable[[], RenderableType]) -> None:
    """`data` as one JSON object with `--json`, else `view()` for people."""
    if as_json:
        typer.echo(json.dumps(data))
    else:
        print_wide(view())


def print_wide(renderable: RenderableType) -> None:
    """Print as wide as the terminal, or wider when a table's ids and paths need it: the
    terminal then folds the long lines, and nothing is cut to `…`."""
    needed = Measurement.get(console, console.options.update_width(10_000), renderable).minimum
    terminal = console.width
    if needed <= terminal:
        console.print(renderable)
        return
    console.width = needed  # `print(width=...)` only ever narrows
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = terminal


def fail(message: str, code: int = 1) -> typer.Exit:
    """One red `error:` line on stderr, however long (Rich would wrap it) and whatever
    brackets it holds; the exit status to raise."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)
