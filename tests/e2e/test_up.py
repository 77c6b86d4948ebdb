"""`kiteline up`: first start creates credentials and a pipeline; the README's curl passes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import free_port
from tests.support.processes import kiteline_command, kiteline_env, stop, wait_until
from tests.support.web import http_sign_in


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_up_runs_server_and_agents_and_a_triggered_build_passes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        kiteline_command("up", "--port", str(port), "--agents", "2"),
        env=kiteline_env(data_dir, KITELINE_RATE_LIMIT_ORG_PER_MINUTE="0"),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _healthy(url), timeout=90, what="kiteline up to serve")
        credentials = json.loads((data_dir / "credentials.json").read_text())
        assert (data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600
        # The banner leads into the web UI, and its login works. It is printed once the agents
        # are started too, a little after the server answers.
        wait_until(
            lambda: "Password" in (tmp_path / "up.log").read_text(), timeout=60, what="the banner"
        )
        banner = (tmp_path / "up.log").read_text()
        assert f"Web UI        {url}/" in banner
        assert f"Password      {credentials['password']}" in banner
        with httpx.Client(base_url=url, timeout=30) as browser:
            signed_in = http_sign_in(browser, credentials["user"], credentials["password"])
            assert signed_in.status_code == 303
            assert browser.get("/").headers["location"] == "/default"
        client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {credentials['api_token']}"},
            timeout=30,
        )
        # The README's curl, as httpx.
        created = client.post(
            "/v2/organizations/default/pipelines/hello/builds",
            json={"commit": "HEAD", "branch": "main", "message": "Hello, Kiteline"},
        )
        assert created.status_code == 201, created.text
        number = created.json()["number"]

        def finished() -> dict | None:
            build = client.get(f"/v2/organizations/default/pipelines/hello/builds/{number}").json()
            return build if build["finished_at"] else None

        build = wait_until(finished, timeout=90, what="the hello build to finish")
        assert build["state"] == "passed"
        first = build["jobs"][0]
        log_text = client.get(first["raw_log_url"]).text
        assert f"Hello from Kiteline, build {number} on kiteline-up-" in log_text

        # Ctrl-C stops everything cleanly.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert not _healthy(url)
    finally:
        stop(process)
        log.close()


def test_second_start_reuses_the_stored_credentials(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = kiteline_env(data_dir)
    path = data_dir / "credentials.json"
    stored = []
    for start in range(2):
        port = free_port()
        if start == 1:
            # Made before the web UI existed: the next start adds a password.
            old = json.loads(path.read_text())
            del old["password"]
            path.write_text(json.dumps(old))
        process = subprocess.Popen(
            kiteline_command("up", "--port", str(port), "--agents", "0"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(lambda p=port: _healthy(f"http://127.0.0.1:{p}"), timeout=90, what="up")
            stored.append(json.loads(path.read_text()))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
                signed_in = http_sign_in(browser, stored[-1]["user"], stored[-1]["password"])
                assert signed_in.status_code == 303
        finally:
            stop(process)
    assert stored[0]["api_token"] == stored[1]["api_token"]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


def test_agents_stop_when_up_is_killed(tmp_path: Path) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs Linux /proc")
    port = free_port()
    process = subprocess.Popen(
        kiteline_command("up", "--port", str(port), "--agents", "1"),
        env=kiteline_env(tmp_path / "data"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    agents: list[int] = []
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout=90, what="up")
        agents = wait_until(lambda: _children(process.pid), what="the agent process")
        process.kill()  # SIGKILL: `up` gets no chance to stop its agents itself
        process.wait(timeout=30)
        for agent in agents:
            wait_until(lambda a=agent: not _alive(a), timeout=60, what="the orphaned agent to stop")
    finally:
        stop(process)
        for agent in agents:
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent, signal.SIGKILL)
