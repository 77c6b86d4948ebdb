"""`kiteline login URL`: remember a server, a token (read from stdin, never from the command
line, where `ps` and shell history would keep it) and an organization for the API commands."""

from __future__ import annotations

import getpass
import os
import sys

import typer
from rich.text import Text

from kiteline.cli import credentials
from kiteline.cli.api import connect
from kiteline.cli.output import console, fail


def login(
    url: str = typer.Argument(..., help="The Kiteline server's URL, e.g. http://127.0.0.1:8080."),
    org: str | None = typer.Option(
        None, "--org", help="The default organization [default: the token's only one]."
    ),
) -> None:
    """Check a token against a server and keep both for the API commands (file mode 0600).

    The token is read from stdin: typed at a prompt that does not echo it, or piped in."""
    url = url.rstrip("/")
    token = _read_token()
    with connect(url, token, org) as client:
        slugs = [organization.slug for organization in client.organizations()]
    if org is None:
        if len(slugs) != 1:
            shown = ", ".join(slugs) or "none"
            raise fail(f"the token sees {len(slugs)} organizations ({shown}): pass --org SLUG")
        org = slugs[0]
    elif org not in slugs:
        raise fail(f"the token cannot see the organization {org!r} (it sees {', '.join(slugs)})")
    path = credentials.login_file(os.environ)
    credentials.write_login(path, url=url, token=token, org=org)
    console.print(Text.assemble("Logged in to ", (url, "bold"), f" as {org}; saved in {path}"))


def _read_token() -> str:
    typed = getpass.getpass("API token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = typed.strip()
    if not token:
        raise fail("no token: type it at the prompt, or pipe it in (kiteline login URL < FILE)")
    return token
