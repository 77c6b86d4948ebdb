"""Shared pieces of the benchmarks: a real server and agents as processes, a fresh database,
percentiles, peak RSS from /proc, and the one-JSON-line output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kiteline.server import admin
from kiteline.server.kit.scopes import SCOPES
from kiteline.settings import Settings, normalize_database_url


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan"),
    }


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    """A fresh SQLite file, or a new database on KITELINE_BENCH_DATABASE_URL's server."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{work / 'bench.db'}"
        return
    base = os.environ.get("KITELINE_BENCH_DATABASE_URL") or os.environ.get(
        "KITELINE_TEST_DATABASE_URL"
    )
    if not base:
        raise SystemExit("set KITELINE_BENCH_DATABASE_URL to a PostgreSQL server")
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(normalize_database_url(base))
    name = f"kiteline_bench_{uuid.uuid4().hex[:10]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Kiteline:
    url: str
    api_token: str
    agent_token: str
    settings: Settings
    server: subprocess.Popen[bytes]
    work: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_token}"}, timeout=60
        )


async def _setup(session: Any) -> tuple[str, str]:
    await admin.create_org(session, "bench", "Bench")
    await admin.create_user(session, "bench@kiteline.local", None, "bench")
    token = await admin.create_token(session, "bench@kiteline.local", list(SCOPES), "bench")
    agent = await admin.create_agent_token(session, "bench", "bench")
    return token["token"], agent["token"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITELINE_")}
    env["KITELINE_DATA_DIR"] = str(settings.data_dir)
    env["KITELINE_DATABASE_URL"] = settings.resolved_database_url
    env.update(extra)
    return env


@contextmanager
def kiteline(database_url: str, **server_env: str) -> Iterator[Kiteline]:
    with tempfile.TemporaryDirectory(prefix="kiteline-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data", database_url=database_url)
        api_token, agent_token = asyncio.run(admin.run_in_transaction(settings, _setup))
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kiteline",
                "server",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=_env(settings, KITELINE_RATE_LIMIT_ORG_PER_MINUTE="0", **server_env),
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.05)
            yield Kiteline(url, api_token, agent_token, settings, server, work)
        finally:
            stop(server)


@contextmanager
def agents(k: Kiteline, count: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kiteline",
            "agent",
            "start",
            "--endpoint",
            k.url,
            "--token",
            k.agent_token,
            "--spawn",
            str(count),
            "--name",
            "bench-%spawn",
            "--build-path",
            str(k.work / "builds"),
        ],
        env=_env(k.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
