"""`kiteline admin create-user --password-stdin` and `kiteline admin set-password`: the password
comes from standard input, and it signs the user in to the web UI."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import fresh_database
from tests.support.live_server import LiveServer
from tests.support.processes import kiteline_command, kiteline_env
from tests.support.web import http_sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: what these commands do does not depend on the database (the service they
    call is tested on both), and each is a whole process start."""
    with fresh_database("sqlite", tmp_path) as url:
        yield url


def admin(
    server: LiveServer, tmp_path: Path, *args: str, stdin: str
) -> subprocess.CompletedProcess[str]:
    env = kiteline_env(tmp_path / "cli", server.settings.resolved_database_url)
    return subprocess.run(
        kiteline_command("admin", *args),
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def signs_in(server: LiveServer, email: str, password: str) -> bool:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return http_sign_in(client, email, password).status_code == 303


def test_create_user_reads_the_password_from_stdin(server: LiveServer, tmp_path: Path) -> None:
    server.identity("acme")
    created = admin(
        server,
        tmp_path,
        "create-user",
        "ada@example.com",
        "--org",
        "acme",
        "--password-stdin",
        stdin="analytical engine\n",
    )
    assert created.returncode == 0, created.stderr
    assert signs_in(server, "ada@example.com", "analytical engine")
    assert not signs_in(server, "ada@example.com", "analytical engine\n")


def test_set_password_replaces_the_password(server: LiveServer, tmp_path: Path) -> None:
    identity = server.identity("acme")
    changed = admin(server, tmp_path, "set-password", identity.email, stdin="first password\n")
    assert changed.returncode == 0, changed.stderr
    assert "password set for" in changed.stdout
    assert signs_in(server, identity.email, "first password")
    admin(server, tmp_path, "set-password", identity.email, stdin="second password\n")
    assert not signs_in(server, identity.email, "first password")
    assert signs_in(server, identity.email, "second password")


def test_set_password_refuses_a_short_one(server: LiveServer, tmp_path: Path) -> None:
    identity = server.identity("acme")
    refused = admin(server, tmp_path, "set-password", identity.email, stdin="short\n")
    assert refused.returncode != 0
    assert "password must be at least 8 characters" in refused.stderr


def test_set_password_for_an_unknown_user_fails(server: LiveServer, tmp_path: Path) -> None:
    refused = admin(server, tmp_path, "set-password", "nobody@example.com", stdin="long enough\n")
    assert refused.returncode != 0
    assert "No user found" in refused.stderr
