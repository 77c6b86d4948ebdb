"""`kiteline server --workers N`: several processes on one port on PostgreSQL, the sweeps run
by one of them; refused on SQLite with the reason."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from kiteline.server.workers.leader import SWEEP_LOCK_KEY
from tests.support.live_server import free_port
from tests.support.processes import kiteline_command, running, settings_env, wait_until
from tests.support.run_async import run_async

#: Concurrent /healthz requests per round; rounds until both processes have answered.
CONCURRENT = 8
ROUNDS = 100


def _sweep_lock_holders(database_url: str) -> int:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)

    async def count() -> int:
        connection = await asyncpg.connect(dsn)
        try:
            holders = await connection.fetchval(
                """
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND ((classid::bigint << 32) | objid::bigint) = $1
                """,
                SWEEP_LOCK_KEY,
            )
            return int(holders)
        finally:
            await connection.close()

    return run_async(count)


def _pids_answering(url: str) -> set[int]:
    """The pids /healthz reports, over new connections, until two have answered."""
    pids: set[int] = set()

    def one(_: int) -> int:
        with httpx.Client(timeout=30) as client:  # a new connection: any process may accept
            return int(client.get(f"{url}/healthz").json()["pid"])

    with ThreadPoolExecutor(CONCURRENT) as pool:
        for _ in range(ROUNDS):
            pids |= set(pool.map(one, range(CONCURRENT)))
            if len(pids) >= 2:
                break
    return pids


def test_two_processes_serve_one_port_and_one_runs_the_sweeps(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several processes need PostgreSQL (the SQLite refusal is tested below)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(tmp_path / "data", database_url)
    with running(
        ["server", "--port", str(port), "--workers", "2"], env, tmp_path / "server.log"
    ) as server:
        wait_until(
            lambda: _healthy(url), timeout=120, what="the server's processes to answer /healthz"
        )
        pids = _pids_answering(url)
        assert len(pids) == 2
        assert server.pid not in pids  # the supervisor serves nothing itself
        wait_until(lambda: _sweep_lock_holders(database_url) == 1, what="a sweep leader")
        assert [_sweep_lock_holders(database_url) for _ in range(5)] == [1] * 5


def test_workers_are_refused_on_sqlite_with_the_reason(tmp_path: Path) -> None:
    completed = subprocess.run(
        kiteline_command("server", "--port", str(free_port()), "--workers", "2"),
        env=settings_env(tmp_path / "data", None),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 1
    assert " ".join(completed.stderr.split()) == (
        "error: --workers 2 needs PostgreSQL (KITELINE_DATABASE_URL): SQLite takes one writer "
        "at a time, and Kiteline queues its writers inside one process (decision 0009); "
        "processes would instead poll each other's write lock, slower than one. Serve SQLite "
        "with one process, or move to PostgreSQL for several"
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
