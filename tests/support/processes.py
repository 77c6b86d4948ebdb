"""Real `kiteline` processes for end-to-end tests: started, waited for, always stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.live_server import free_port

T = TypeVar("T")


def kiteline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kiteline", *args]


def kiteline_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITELINE_", "BUILDKITE_"))}
    env["KITELINE_DATA_DIR"] = str(data_dir)
    if database_url:
        env["KITELINE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_kiteline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `kiteline ARGS` to its end (two minutes at most): its exit status and its output."""
    return subprocess.run(
        kiteline_command(*args), env=env, capture_output=True, text=True, timeout=120
    )


def run_json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a `--json` command and return the one JSON object it printed."""
    completed = run_kiteline(*args, "--json", env=env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def wait_until(check: Callable[[], T | None], *, timeout: float = 60, what: str = "it") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose output goes to `log`; SIGTERM then SIGKILL on the way out."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            kiteline_command(*args),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def server_process(
    data_dir: Path, database_url: str, log_dir: Path, **settings: str
) -> Iterator[str]:
    """A `kiteline server` process; `settings` become KITELINE_<NAME> variables."""
    port = free_port()
    with server_on(port, data_dir, database_url, log_dir / "server.log", **settings):
        yield f"http://127.0.0.1:{port}"


def settings_env(data_dir: Path, database_url: str | None, **settings: str) -> dict[str, str]:
    """The environment of a server-side process: `settings` become KITELINE_<NAME> variables;
    no rate limit (tests poll builds faster than Buildkite's 200 requests a minute allow)."""
    settings = {"rate_limit_org_per_minute": "0", **settings}
    return kiteline_env(
        data_dir, database_url, **{f"KITELINE_{k.upper()}": v for k, v in settings.items()}
    )


@contextmanager
def server_on(
    port: int, data_dir: Path, database_url: str, log: Path, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A `kiteline server` process on `port`, once it answers (a test may kill it and start
    another on the same port, where its agents look for it)."""
    url = f"http://127.0.0.1:{port}"
    with running(
        ["server", "--port", str(port)], settings_env(data_dir, database_url, **settings), log
    ) as process:
        wait_until(lambda: _healthy(url), timeout=60, what="the server to answer /healthz")
        yield process


def kill(process: subprocess.Popen[bytes]) -> None:
    """`kill -9` of the process and everything in its group, reaped."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
