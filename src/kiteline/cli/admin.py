"""`kiteline admin …`: create organizations, users, API tokens and agent tokens; set passwords."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.cli.output import fail, show
from kiteline.server import admin
from kiteline.server.kit.errors import KitelineError, ValidationFailed
from kiteline.server.kit.scopes import parse_scopes
from kiteline.settings import Settings

app = typer.Typer(
    rich_markup_mode=None, help="Create organizations, users and tokens", no_args_is_help=True
)

JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object.")


def _run(action: Callable[[AsyncSession], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    try:
        return asyncio.run(admin.run_in_transaction(Settings(), action))
    except ValidationFailed as error:
        details = "; ".join(f"{e['field']} {e['code']}" for e in error.errors)
        raise fail(details) from error
    except KitelineError as error:
        raise fail(error.message) from error


@app.command("create-org")
def create_org(
    slug: str,
    name: str | None = typer.Option(None, help="Display name (defaults to the slug)."),
    as_json: bool = JSON_OPTION,
) -> None:
    result = _run(lambda s: admin.create_org(s, slug, name))
    show(
        result, as_json=as_json, view=lambda: f"created organization [bold]{result['slug']}[/bold]"
    )


def read_password() -> str:
    """The password from standard input: typed twice at a terminal, else its first line (so
    `echo "$PASSWORD" | kiteline admin …` works and a trailing newline is not part of it)."""
    if sys.stdin.isatty():
        entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return entered
    return sys.stdin.readline().rstrip("\r\n")


@app.command("create-user")
def create_user(
    email: str,
    name: str | None = typer.Option(None, help="Display name."),
    org: str | None = typer.Option(None, help="Organization slug to add the user to."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a web UI password from standard input."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    password = read_password() if password_stdin else None
    result = _run(lambda s: admin.create_user(s, email, name, org, password))
    show(result, as_json=as_json, view=lambda: f"created user [bold]{result['email']}[/bold]")


@app.command("set-password")
def set_password(email: str, as_json: bool = JSON_OPTION) -> None:
    """Set the user's web UI password (read from standard input); signs them out everywhere."""
    password = read_password()
    result = _run(lambda s: admin.set_password(s, email, password))
    show(
        result,
        as_json=as_json,
        view=lambda: (
            f"password set for [bold]{result['email']}[/bold] "
            f"({result['sessions_ended']} session(s) signed out)"
        ),
    )


@app.command("create-token")
def create_token(
    user: str = typer.Option(..., help="Email of the token's user."),
    scopes: str = typer.Option("all", help="Comma-separated scopes, or `all`."),
    description: str | None = typer.Option(None, help="What the token is for."),
    as_json: bool = JSON_OPTION,
) -> None:
    try:
        scope_list = parse_scopes(scopes)
    except ValueError as error:
        raise fail(str(error)) from error
    result = _run(lambda s: admin.create_token(s, user, scope_list, description))
    show(result, as_json=as_json, view=lambda: f"API token: [bold]{result['token']}[/bold]")


@app.command("create-agent-token")
def create_agent_token(
    org: str = typer.Option(..., help="Organization slug."),
    description: str | None = typer.Option(None, help="What the token is for."),
    as_json: bool = JSON_OPTION,
) -> None:
    result = _run(lambda s: admin.create_agent_token(s, org, description))
    show(result, as_json=as_json, view=lambda: f"agent token: [bold]{result['token']}[/bold]")
