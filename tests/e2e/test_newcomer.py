"""A newcomer's first hour: `kiteline up` in a folder, then the API commands in that folder
with nothing exported; a second `up` on the same port; `kiteline login` for elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import free_port
from tests.support.processes import kiteline_command, stop, wait_until


@dataclass
class Up:
    folder: Path
    url: str
    port: int
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kiteline_command(*args),
            cwd=cwd or self.folder,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _bare_env(home: Path) -> dict[str, str]:
    """This environment with no Kiteline or Buildkite settings at all, and its own home (so no
    login file from elsewhere is found)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITELINE_", "BUILDKITE_"))}
    return env | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "COLUMNS": "80"}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    env = _bare_env(tmp_path_factory.mktemp("home"))
    with (folder / "up.log").open("wb") as log:
        process = subprocess.Popen(
            kiteline_command("up", "--port", str(port), "--agents", "1"),
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(url), timeout=90, what="kiteline up to serve")
            yield Up(folder, url, port, env)
        finally:
            stop(process)


def test_api_commands_find_the_credentials_up_wrote_with_nothing_exported(up: Up) -> None:
    created = up.run("build", "create", "hello", "--watch", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["state"] == "passed"
    listed = up.run("build", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(b["pipeline"]["slug"], b["state"]) for b in json.loads(listed.stdout)["builds"]] == [
        ("hello", "passed")
    ]


def test_webhook_commands_find_them_too(up: Up) -> None:
    listed = up.run("webhook", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"items": []}


def test_verbose_says_which_credentials_were_used(up: Up) -> None:
    listed = up.run("pipeline", "list", "-v")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [
        f"Using {up.url} as default, from .kiteline/credentials.json"
    ]
    assert listed.stdout.split()[:5] == ["Slug", "Name", "Repository", "Default", "branch"]


def test_up_on_a_taken_port_is_one_line_naming_it_and_writes_nothing(
    up: Up, tmp_path: Path
) -> None:
    for command in ("up", "server"):
        refused = up.run(command, "--port", str(up.port), cwd=tmp_path)
        assert refused.returncode == 1
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"error: listening on 127.0.0.1:{up.port} is already in use"), line
        assert f"--port {up.port + 1}" in line
        assert list(tmp_path.iterdir()) == []


def test_login_keeps_a_checked_token_for_other_folders(up: Up, tmp_path: Path) -> None:
    token = json.loads((up.folder / ".kiteline" / "credentials.json").read_text())["api_token"]
    refused = up.run("login", up.url, cwd=tmp_path, stdin="not-a-token\n")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    logged_in = up.run("login", up.url, cwd=tmp_path, stdin=f"{token}\n")
    assert logged_in.returncode == 0, logged_in.stderr
    login_file = Path(up.env["XDG_CONFIG_HOME"]) / "kiteline" / "login.json"
    assert login_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(login_file.read_text()) == {"url": up.url, "token": token, "org": "default"}
    listed = up.run("pipeline", "list", "--json", "-v", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [p["slug"] for p in json.loads(listed.stdout)["pipelines"]] == ["hello"]
    assert listed.stderr.strip().endswith(f"from {login_file}")


def test_make_up_passes_port_and_agents_on() -> None:
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run(
        # Under `make test` (as in CI) make's own variables would have it name directories.
        ["make", "--no-print-directory", "-n", "up", "PORT=8123", "AGENTS=3"],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == ".venv/bin/kiteline up --port 8123 --agents 3"
