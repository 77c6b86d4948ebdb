"""`kiteline admin …`: create organizations, users, API tokens and agent tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.cli.output import emit, fail
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
    emit(result, as_json=as_json, text=f"created organization [bold]{result['slug']}[/bold]")


@app.command("create-user")
def create_user(
    email: str,
    name: str | None = typer.Option(None, help="Display name."),
    org: str | None = typer.Option(None, help="Organization slug to add the user to."),
    as_json: bool = JSON_OPTION,
) -> None:
    result = _run(lambda s: admin.create_user(s, email, name, org))
    emit(result, as_json=as_json, text=f"created user [bold]{result['email']}[/bold]")


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
    emit(result, as_json=as_json, text=f"API token: [bold]{result['token']}[/bold]")


@app.command("create-agent-token")
def create_agent_token(
    org: str = typer.Option(..., help="Organization slug."),
    description: str | None = typer.Option(None, help="What the token is for."),
    as_json: bool = JSON_OPTION,
) -> None:
    result = _run(lambda s: admin.create_agent_token(s, org, description))
    emit(result, as_json=as_json, text=f"agent token: [bold]{result['token']}[/bold]")
