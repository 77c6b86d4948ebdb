"""Shared pieces of the benchmarks: a real server and agents as processes, a fresh database
(SQLite, a given PostgreSQL server or a throwaway cluster), builds seeded in bulk, percentiles,
peak RSS from /proc, bounded waits, and the one-JSON-line output (progress goes to stderr)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import insert, select, text, update

from kiteline.agent.api import AgentApi, JobFinish, RegisterRequest, go_arch, utc_timestamp
from kiteline.agent.api import Job as AcceptedJob
from kiteline.server import admin
from kiteline.server.builds.models import Build
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine
from kiteline.server.kit.scopes import SCOPES
from kiteline.server.pipelines.models import Pipeline
from kiteline.settings import Settings, normalize_database_url

ORG = "bench"
SEED_BATCH = 5_000
WARM_UP_REQUESTS = 3

#: The web UI benchmarks' user, given a password with `set_web_password`.
WEB_EMAIL = "bench@kiteline.local"
WEB_PASSWORD = "benchmark password"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')

T = TypeVar("T")


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one line on stdout."""
    print(json.dumps(result), flush=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM (a time budget running out) into SystemExit, so cleanup code runs and the
    servers and agents a benchmark started, each in its own session, are stopped too."""

    def exit_now(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "samples": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan"),
    }


def _proc_status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    return _proc_status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _proc_status_mb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and of its living children (a server's `--workers`)."""
    total = cpu_seconds(pid)
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            # One that ended meanwhile is counted in its parent's cutime once waited for.
            with contextlib.suppress(FileNotFoundError):
                total += tree_cpu_seconds(int(child))
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def in_process_server(
    settings: Settings, *, counted: Callable[[str], bool], as_served: bool = False
) -> Iterator[tuple[str, list[str], threading.Thread]]:
    """A server in a thread of this process (no background workers): its URL, the list the SQL
    statements it runs go to (those `counted` accepts), and the thread whose CPU clock is its
    CPU. `as_served`: prepared as `kiteline server` prepares its process once its app is built."""
    import uvicorn
    from sqlalchemy import event

    from kiteline.server.app import create_app, prepare_serving_process

    port = free_port()
    app = create_app(settings.model_copy(update={"run_workers": False}))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="in-process-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the in-process server did not start")
            time.sleep(0.02)
        if as_served:
            prepare_serving_process()
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if counted(statement):
                statements.append(statement)

        engine = app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            yield f"http://127.0.0.1:{port}", statements, thread
        finally:
            event.remove(engine, "before_cursor_execute", count)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `condition` until it holds; give up with an error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(interval)


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def _load(
    url: str,
    token: str,
    send: Send,
    check: Callable[[httpx.Response], bool],
    concurrency: int,
    requests: int,
    duration: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:
        for _ in range(WARM_UP_REQUESTS):  # caches of compiled statements fill on first use
            await send(client)
        began = time.perf_counter()
        deadline = began + duration

        async def worker(count: int) -> None:
            for _ in range(count):
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                response = await send(client)
                latencies.append(time.perf_counter() - sent)
                if not check(response):
                    failures.append(f"{response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    result: dict[str, Any] = {
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "failed": len(failures),
    }
    if failures:
        result["first_failure"] = failures[0]
    return result


def load(
    url: str,
    token: str,
    *,
    send: Send,
    check: Callable[[httpx.Response], bool],
    concurrency: int,
    requests: int,
    duration: float = 60,
) -> dict[str, Any]:
    """Up to `requests` requests from `concurrency` clients at once, each sent when its last
    was answered, for at most about `duration` seconds (after a few warm-up requests).

    Returns req/s and latency percentiles over all answers, and how many failed `check`.
    """
    requests = max(requests, concurrency)
    return asyncio.run(_load(url, token, send, check, concurrency, requests, duration))


# wrk's Lua hooks: count answers that are not 2xx (wrk itself counts only >= 400), and print
# one JSON line at the end with the totals and latency percentiles (microseconds).
_WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non_2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non_2xx = non_2xx + 1 end
end
function done(summary, latency, requests)
  local non_2xx_total = 0
  for _, thread in ipairs(threads) do non_2xx_total = non_2xx_total + thread:get("non_2xx") end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, '
      .. '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, non_2xx_total,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_load(
    url: str, token: str, *, path: str, concurrency: int, duration: float
) -> dict[str, Any]:
    """`GET path` from `concurrency` connections at once for `duration` seconds with `wrk`
    (a C load generator: the Python client tops out near the rate it is meant to measure).

    Returns what `load` returns; an answer that is not 2xx, or a socket error (connect, read,
    write, timeout), counts as failed. The caller checks the answers' content separately.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        completed = subprocess.run(
            [
                "wrk",
                f"-c{concurrency}",
                f"-t{min(concurrency, 2)}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",
                "-H",
                f"Authorization: Bearer {token}",
                "-s",
                script.name,
                f"{url}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
    finally:
        os.unlink(script.name)
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT ")), None
    )
    if completed.returncode != 0 or line is None:
        raise SystemExit(
            f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}"
        )
    measured = json.loads(line.removeprefix("WRK_RESULT "))
    failed = measured["non_2xx"] + measured["socket_errors"]
    result: dict[str, Any] = {
        "requests": measured["requests"],
        "req_per_s": round(measured["requests"] / (measured["duration_us"] / 1e6), 1),
        "p50_ms": round(measured["p50_us"] / 1000, 2),
        "p99_ms": round(measured["p99_us"] / 1000, 2),
        "failed": failed,
    }
    if failed:
        result["first_failure"] = (
            f"{measured['non_2xx']} answers not 2xx, {measured['socket_errors']} socket errors"
        )
    return result


def _sql(dsn: str, statement: str) -> None:
    import asyncpg

    async def execute() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


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
    from sqlalchemy.engine import make_url

    url = make_url(normalize_database_url(base))
    name = f"kiteline_bench_{uuid.uuid4().hex[:10]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    _sql(dsn, f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        _sql(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgresql_binaries() -> Path | None:
    """The newest Debian PostgreSQL server binaries on this machine, if any."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


@contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """A private PostgreSQL cluster on a free loopback port, removed afterwards.

    Commits are not waited for on disk (synchronous_commit=off), which matches Kiteline's SQLite
    setting (WAL with synchronous=NORMAL): a crash may lose the last commits, never corrupt.
    """
    binaries = postgresql_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql")
    data = Path(tempfile.mkdtemp(prefix="kiteline-bench-pg-"))
    as_root = os.geteuid() == 0

    def run(*argv: str) -> None:
        command = [str(binaries / argv[0]), *argv[1:]]
        if as_root:  # initdb refuses to run as root: run it as the postgres user
            command = ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(command)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=120)

    if as_root:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    options = (
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        "-c synchronous_commit=off"
    )
    run("initdb", "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(
        "pg_ctl",
        "-D",
        str(data / "db"),
        "-l",
        str(data / "server.log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            run("pg_ctl", "-D", str(data / "db"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(data, ignore_errors=True)


def database_info(database_url: str) -> dict[str, str]:
    """What the numbers ran on: the database engine's version and how commits reach disk."""

    async def ask() -> dict[str, str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                if database_url.startswith("sqlite"):
                    return {
                        "database": f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"
                    }
                version = await connection.scalar(text("SHOW server_version"))
                commit = await connection.scalar(text("SHOW synchronous_commit"))
                return {"database": f"PostgreSQL {version} (synchronous_commit={commit})"}
        finally:
            await engine.dispose()

    return asyncio.run(ask())


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


def create_pipeline(client: httpx.Client, name: str, configuration: str) -> str:
    """A pipeline in the bench organization; returns its slug."""
    response = client.post(
        f"/v2/organizations/{ORG}/pipelines",
        json={"name": name, "configuration": configuration},
    )
    if response.status_code != 201:
        raise SystemExit(f"creating pipeline {name}: {response.status_code} {response.text}")
    return str(response.json()["slug"])


def create_build(client: httpx.Client, pipeline: str) -> dict[str, Any]:
    response = client.post(
        f"/v2/organizations/{ORG}/pipelines/{pipeline}/builds",
        json={"commit": "HEAD", "branch": "main"},
    )
    if response.status_code != 201:
        raise SystemExit(f"creating a build of {pipeline}: {response.status_code} {response.text}")
    build: dict[str, Any] = response.json()
    return build


async def _setup(session: Any) -> tuple[str, str]:
    await admin.create_org(session, ORG, "Bench")
    await admin.create_user(session, "bench@kiteline.local", None, ORG)
    token = await admin.create_token(session, "bench@kiteline.local", list(SCOPES), "bench")
    agent = await admin.create_agent_token(session, ORG, "bench")
    return token["token"], agent["token"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITELINE_")}
    env["KITELINE_DATA_DIR"] = str(settings.data_dir)
    env["KITELINE_DATABASE_URL"] = settings.resolved_database_url
    env.update(extra)
    return env


@contextmanager
def kiteline(
    database_url: str,
    *,
    workers: int = 1,
    launcher: list[str] | None = None,
    **server_env: str,
) -> Iterator[Kiteline]:
    """`kiteline server` as its own process on a free port, with an org, a user and tokens.

    `workers` > 1 serves with that many processes (`--workers`, PostgreSQL only); `server_env`
    adds KITELINE_* settings; the REST rate limit is off. `launcher`: what runs instead of
    `python -m kiteline server` (given the same `--port` and `--log-level`).
    """
    with tempfile.TemporaryDirectory(prefix="kiteline-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data", database_url=database_url)
        api_token, agent_token = asyncio.run(admin.run_in_transaction(settings, _setup))
        port = free_port()
        server = subprocess.Popen(
            [
                *(launcher or [sys.executable, "-m", "kiteline", "server"]),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *(["--workers", str(workers)] if workers != 1 else []),
            ],
            env=_env(settings, KITELINE_RATE_LIMIT_ORG_PER_MINUTE="0", **server_env),
            stdout=sys.stderr,  # stdout is the benchmark's one JSON line
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                if server.poll() is not None:
                    raise SystemExit("the server exited while starting")
                try:
                    return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, timeout=60, what="the server's start")
            yield Kiteline(url, api_token, agent_token, settings, server, work)
        finally:
            stop(server)


def argument_parser(doc: str, **counts: int) -> argparse.ArgumentParser:
    """A benchmark's command line: its module docstring as the help, `--backend` and an integer
    option per `counts` entry (`browser_samples=10`: `--browser-samples`, 10 by default)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    for name, default in counts.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    return parser


@contextmanager
def bench_server(
    backend: str, *, web: bool = False, workers: int = 1, **server_env: str
) -> Iterator[tuple[str, Kiteline]]:
    """A fresh `backend` database and `kiteline server` on it (`kiteline()`, with `workers`
    processes), with the web UI user's password set when `web`: the database URL and the
    server."""
    with (
        tempfile.TemporaryDirectory(prefix="kiteline-bench-db-") as tmp,
        database(backend, Path(tmp)) as url,
        kiteline(url, workers=workers, **server_env) as k,
    ):
        if web:
            set_web_password(k)
        yield url, k


@contextmanager
def agents(k: Kiteline, count: int, queue: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """One `kiteline agent start --spawn count` process (one process, `count` workers), in
    `queue` when given (else the default queue)."""
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
            f"bench-{queue}-%spawn" if queue else "bench-%spawn",
            *(["--tags", f"queue={queue}"] if queue else []),
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


def stop(process: subprocess.Popen[Any]) -> None:
    """End a process started with start_new_session=True, and everything it started."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        process.wait(timeout=10)


def _build_row(pipeline: Any, number: int, created: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": pipeline.organization_id,
        "pipeline_id": pipeline.id,
        "number": number,
        "state": "passed",
        "blocked": False,
        "commit": "HEAD",
        "branch": "main",
        "message": f"build {number}",
        "env": {},
        "source": "api",
        "author": {},
        "clean_checkout": False,
        "pipeline_configuration": "",
        "created_at": created,
        "scheduled_at": created,
        "started_at": created,
        "finished_at": created,
    }


def _job_row(
    pipeline: Any, build_id: uuid.UUID, position: int, created: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": pipeline.organization_id,
        "pipeline_id": pipeline.id,
        "build_id": build_id,
        "step_id": uuid.uuid4(),
        "position": position,
        "type": "script",
        "label": f"test {position}",
        "command": "true",
        "state": "finished",
        "agent_query_rules": ["queue=default"],
        "env": {},
        "depends_on": [],
        "step": {},
        "definition": {},
        "exit_status": 0,
        "passed": True,
        "created_at": created,
        "runnable_at": created,
        "started_at": created,
        "finished_at": created,
    }


async def _seed_builds(
    database_url: str,
    pipeline_slug: str,
    total: int,
    already: int,
    with_jobs: int,
    jobs_per_build: int,
) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            pipeline = (
                await connection.execute(select(Pipeline).where(Pipeline.slug == pipeline_slug))
            ).one()
            start = datetime(2020, 1, 1, tzinfo=UTC)
            for offset in range(already, total, SEED_BATCH):
                builds: list[dict[str, Any]] = []
                jobs: list[dict[str, Any]] = []
                for number in range(offset + 1, min(offset + SEED_BATCH, total) + 1):
                    created = start + timedelta(seconds=number)
                    build = _build_row(pipeline, number, created)
                    builds.append(build)
                    if number > total - with_jobs:
                        jobs.extend(
                            _job_row(pipeline, build["id"], position, created)
                            for position in range(jobs_per_build)
                        )
                await connection.execute(insert(Build), builds)
                for first in range(0, len(jobs), SEED_BATCH):
                    await connection.execute(insert(Job), jobs[first : first + SEED_BATCH])
            await connection.execute(
                update(Pipeline).where(Pipeline.id == pipeline.id).values(last_build_number=total)
            )
    finally:
        await engine.dispose()


def seed_builds(
    database_url: str,
    pipeline_slug: str,
    total: int,
    *,
    already: int = 0,
    with_jobs: int = 1_000,
    jobs_per_build: int = 1,
) -> None:
    """Insert finished builds numbered already+1..total into a pipeline, straight with SQL.

    Only the newest `with_jobs` builds of `total` get `jobs_per_build` finished jobs each, so
    the pages a benchmark reads render jobs as usual while the table stays cheap to fill.
    """
    asyncio.run(
        _seed_builds(database_url, pipeline_slug, total, already, with_jobs, jobs_per_build)
    )


def set_web_password(k: Kiteline) -> None:
    """Gives the benchmark's user (WEB_EMAIL) its web UI password."""
    asyncio.run(
        admin.run_in_transaction(
            k.settings, lambda session: admin.set_password(session, WEB_EMAIL, WEB_PASSWORD)
        )
    )


def _sign_in_form(login_page: httpx.Response) -> dict[str, str]:
    token = CSRF_FIELD.search(login_page.text)
    if token is None:
        raise SystemExit("the sign-in form has no CSRF token")
    return {"email": WEB_EMAIL, "password": WEB_PASSWORD, "next": "/", "csrf_token": token.group(1)}


def _check_signed_in(answer: httpx.Response) -> None:
    if answer.status_code != 303:
        raise SystemExit(f"signing in: {answer.status_code} {answer.text[:200]}")


def web_sign_in(url: str) -> httpx.Client:
    """A client signed in to the web UI as the benchmark's user, asking for HTML."""
    client = httpx.Client(base_url=url, timeout=60, headers={"Accept": "text/html"})
    _check_signed_in(client.post("/login", data=_sign_in_form(client.get("/login"))))
    return client


async def web_sign_in_async(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client` (on the server's URL) signed in to the web UI as the benchmark's user."""
    _check_signed_in(await client.post("/login", data=_sign_in_form(await client.get("/login"))))
    return client


def measured(
    k: Kiteline,
    name: str,
    requests: int,
    measure: Callable[[], tuple[list[float], dict[str, int]]],
) -> dict[str, Any]:
    """One measurement's row: `measure`'s latencies (it makes WARM_UP_REQUESTS + `requests`
    requests) as a summary, the facts it returns beside them (bytes, lines…) and the server's
    CPU time per request."""
    cpu_before = cpu_seconds(k.server.pid)
    latencies, facts = measure()
    cpu = cpu_seconds(k.server.pid) - cpu_before
    row = {
        **summary_ms(latencies),
        **facts,
        "server_cpu_ms_per_request": round(cpu * 1000 / (requests + WARM_UP_REQUESTS), 1),
    }
    shown = ", ".join(f"{value} {fact}" for fact, value in facts.items())
    progress(f"{name}: p50 {row['p50_ms']} ms, {shown}")
    return row


def timed(fetch: Callable[[], T], requests: int) -> tuple[list[float], T]:
    """`fetch` WARM_UP_REQUESTS times, then `requests` times timed one after another: the
    latencies in seconds and the last answer."""
    for _ in range(WARM_UP_REQUESTS):
        fetch()
    latencies, answers = [], []
    for _ in range(requests):
        began = time.perf_counter()
        answers.append(fetch())
        latencies.append(time.perf_counter() - began)
    if not answers:
        raise SystemExit("nothing was measured: --requests must be at least 1")
    return latencies, answers[-1]


def passed() -> JobFinish:
    """A finish call's body for a job that exited 0 now, every log chunk sent."""
    return JobFinish(
        exit_status=0,
        signal=None,
        signal_reason=None,
        chunks_failed_count=0,
        finished_at=utc_timestamp(),
    )


async def connected_agent(api: AgentApi, name: str, queue: str = "default") -> AgentApi:
    """Register an agent called `name` in `queue` with `api` (the agent registration token's)
    and connect it: its own API."""
    registration = await api.register(
        RegisterRequest(
            name=name,
            hostname=socket.gethostname(),
            os="linux",
            arch=go_arch(),
            meta_data=[f"queue={queue}"],
            pid=0,
        )
    )
    agent = api.with_token(registration.access_token)
    await agent.connect()
    return agent


async def take_started_job(api: AgentApi, name: str) -> tuple[AgentApi, AcceptedJob]:
    """Register an agent called `name`, wait for the one job it is given, accept and start
    it: the job's API (with the job's token) and the accepted job."""
    agent = await connected_agent(api, name)
    deadline = time.monotonic() + 60
    while (ping := await agent.ping(wait=5)).job is None:
        if time.monotonic() > deadline:
            raise SystemExit("no job was assigned to the bench agent within 60s")
    job = await agent.accept_job(ping.job.id)
    runner = agent.with_token(job.token)
    await runner.start_job(job.id, started_at=utc_timestamp())
    return runner, job
