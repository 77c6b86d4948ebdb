"""The per-request floor: server CPU per request of the cheapest calls of each API.

    python bench/floor.py [--backend sqlite|postgresql] [--requests 300] [--rounds 3]
                          [--profile]

A server runs in a thread of this process (as `bench/dispatch.py --only-profile` does); each
request is sent after the previous answer (one keep-alive connection), and its cost is the
server thread's CPU clock across `--requests` of them, divided (the client's CPU is on other
threads). The calls, cheapest first:

- `meta`: `GET /v2/meta`, a route that reads nothing (the framework alone);
- `healthz`: `GET /healthz`, one read-only transaction with `SELECT 1`;
- `ping`: `GET /v3/ping` of a connected agent with nothing to run (one write transaction);
- `job_state`: `GET /v3/jobs/{id}` with the job's token (one read);
- `builds_page`: `GET …/builds?per_page=100` of 100 finished builds, answered from the kept
  page (decision 0010: authentication, the organization and the page's signature);
- `graphql_kept`: a small dashboard query answered from what was kept (decision 0042).

Each call is measured `--rounds` times, the calls taking turns, and the median kept; the
statements a call runs are counted by a SQLAlchemy listener. `--profile` also runs each call
under cProfile through the app in this thread (no HTTP server) and prints, per call, the
share of each package and of the request's stages, to stderr. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    _setup,
    argument_parser,
    connected_agent,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    in_process_server,
    progress,
    seed_builds,
)

from kiteline.agent.api import AgentApi, Session
from kiteline.server import admin
from kiteline.settings import Settings

BUILDS = 100
GRAPHQL = """
query Floor($org: ID!) {
  organization(slug: $org) {
    pipelines(first: 5) { edges { node { name slug
      builds(first: 3) { edges { node { number state branch } } } } } }
  }
}
"""
CALLS = ("meta", "healthz", "ping", "job_state", "builds_page", "graphql_kept")


def _agent(url: str, agent_token: str) -> tuple[str, str, str]:
    """Two agents registered and connected: one holds a job, the other has nothing to run.
    The idle one's access token, the held job's id and its token."""

    async def run() -> tuple[str, str, str]:
        async with httpx.AsyncClient(timeout=60) as http:
            registration_api = AgentApi(http, Session(f"{url}/v3"), agent_token)
            agent = await connected_agent(registration_api, "floor", "floor")
            ping = await agent.ping(wait=5)
            if ping.job is None:
                raise SystemExit("the floor's agent was given no job")
            job = await agent.accept_job(ping.job.id)
            idle = await connected_agent(registration_api, "floor-idle", "idle")
            return idle.token, job.id, job.token

    return asyncio.run(run())


def _requests(
    url: str, api_token: str, agent_token: str, slug: str, job: tuple[str, str]
) -> dict[str, Callable[[httpx.Client], httpx.Response]]:
    api = {"Authorization": f"Bearer {api_token}"}
    agent = {"Authorization": f"Token {agent_token}"}
    job_id, job_token = job
    job_headers = {"Authorization": f"Token {job_token}"}
    page = f"{url}/v2/organizations/{ORG}/pipelines/{slug}/builds?per_page=100"
    graphql = {"query": GRAPHQL, "variables": {"org": ORG}}
    return {
        "meta": lambda c: c.get(f"{url}/v2/meta"),
        "healthz": lambda c: c.get(f"{url}/healthz"),
        "ping": lambda c: c.get(f"{url}/v3/ping", headers=agent),
        "job_state": lambda c: c.get(f"{url}/v3/jobs/{job_id}", headers=job_headers),
        "builds_page": lambda c: c.get(page, headers=api),
        "graphql_kept": lambda c: c.post(f"{url}/v1", json=graphql, headers=api),
    }


def _check(name: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
    if name == "ping" and response.json() != {"action": "idle"}:
        raise SystemExit(f"ping: the agent is not idle: {response.text}")


def _measure(
    calls: dict[str, Callable[[httpx.Client], httpx.Response]],
    clock: int,
    statements: list[str],
    requests: int,
    rounds: int,
) -> dict[str, Any]:
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    counts: dict[str, float] = {}
    with httpx.Client(timeout=60) as client:
        for name, call in calls.items():  # warm-up: first-request work is not per request
            for _ in range(20):
                _check(name, call(client))
        for _ in range(rounds):
            for name, call in calls.items():
                time.sleep(0.05)  # the server's work after the last answer
                statements.clear()
                before = time.clock_gettime(clock)
                for _ in range(requests):
                    call(client)
                time.sleep(0.01)
                cpu[name].append((time.clock_gettime(clock) - before) * 1000 / requests)
                counts[name] = round(len(statements) / requests, 2)
    return {
        name: {
            "server_cpu_ms": round(statistics.median(values), 3),
            "rounds_ms": [round(v, 3) for v in values],
            "statements": counts[name],
        }
        for name, values in cpu.items()
    }


STAGES = {
    # (label, the function whose cumulative time is the stage), outermost first.
    "middleware: LimitsMiddleware": "limits.py:LimitsMiddleware.__call__",
    "middleware: RequestTimer": "instruments.py:RequestTimer.__call__",
    "middleware: RateLimitHeaders": "ratelimit.py:RateLimitHeaders.__call__",
    "starlette: ExceptionMiddleware": "exceptions.py:ExceptionMiddleware.__call__",
    "starlette: Router.app": "routing.py:Router.app",
    "fastapi: request handler": "routing.py:app",
    "fastapi: solve_dependencies": "dependencies/utils.py:solve_dependencies",
    "fastapi: serialize_response": "routing.py:serialize_response",
    "kiteline: transaction": "db.py:transaction",
    "kiteline: api authenticate": "tokens/auth.py:authenticate",
    "kiteline: record_use": "tokens/auth.py:record_use",
    "kiteline: rate limits": "ratelimit.py:enforce_rate_limits",
    "sqlalchemy: session commit": "session.py:AsyncSession.commit",
    "sqlalchemy: session close": "session.py:AsyncSession.close",
    "sqlalchemy: connection (checkout, BEGIN)": "session.py:AsyncSession.connection",
    "sqlalchemy: execute (all)": "session.py:AsyncSession.execute",
    "sqlalchemy: pool pre-ping": "default.py:DefaultDialect._do_ping_w_event",
}


def _package(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3", "/src/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            if marker == "lib/python3":
                return "stdlib:" + (tail.split("/")[1] if "/" in tail else tail)
            parts = tail.split("/")
            if parts[0] == "kiteline" and len(parts) > 2:
                return "kiteline." + parts[2 if parts[1] == "server" and len(parts) > 3 else 1]
            return parts[0]
    return filename.split("/")[-1] if filename.startswith("/") else filename


def _profile_split(stats: pstats.Stats, requests: int) -> dict[str, Any]:
    by_package: dict[str, float] = {}
    stages: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, cumtime, _callers) in raw.items():
        package = _package(filename)
        by_package[package] = by_package.get(package, 0.0) + tottime
        for label, wanted in STAGES.items():
            path, name = wanted.split(":")
            if filename.endswith(path) and function == name.split(".")[-1]:
                qualified = name if "." not in name else name.split(".")[-1]
                if qualified == function:
                    stages[label] = stages.get(label, 0.0) + cumtime
    scale = 1000 / requests
    return {
        "packages_ms": {
            k: round(v * scale, 3)
            for k, v in sorted(by_package.items(), key=lambda item: -item[1])
            if v * scale >= 0.005
        },
        "stages_ms": {k: round(v * scale, 3) for k, v in stages.items()},
    }


def _profile(settings: Settings, slug: str, tokens: dict[str, Any], requests: int) -> None:
    """Each call through the app in this thread under cProfile: where its time goes."""
    from kiteline.server.app import create_app

    app = create_app(settings.model_copy(update={"run_workers": False}))

    async def run() -> dict[str, Any]:
        found: dict[str, Any] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://floor", timeout=60
            ) as client:
                url = "http://floor"
                calls = _requests(
                    url, tokens["api"], tokens["agent"], slug, (tokens["job_id"], tokens["job"])
                )
                for name, call in calls.items():
                    for _ in range(20):
                        response = await _as_async(client, call)
                        _check(name, response)
                    profiler = cProfile.Profile(time.thread_time)
                    profiler.enable()
                    for _ in range(requests):
                        await _as_async(client, call)
                    profiler.disable()
                    stats = pstats.Stats(profiler)
                    found[name] = _profile_split(stats, requests)
                    if name in ("ping", "builds_page"):
                        stats.sort_stats("cumulative").print_stats(45)
        return found

    result = asyncio.run(run())
    for name, split in result.items():
        progress(f"profile of {name} (ms per request, in-process, client included):")
        for label, value in split["stages_ms"].items():
            progress(f"    {label}: {value}")
        for package, value in list(split["packages_ms"].items())[:16]:
            progress(f"    [{package}] {value}")


async def _as_async(
    client: httpx.AsyncClient, call: Callable[[httpx.Client], httpx.Response]
) -> httpx.Response:
    """Run a request built for a sync client on the async one (same method, URL, headers)."""
    recorder = _Recorder()
    call(recorder)  # type: ignore[arg-type]
    method, url, kwargs = recorder.request
    return await client.request(method, url.replace("http://floor", ""), **kwargs)


class _Recorder:
    request: tuple[str, str, dict[str, Any]]

    def get(self, url: str, **kwargs: Any) -> None:
        self.request = ("GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> None:
        self.request = ("POST", url, kwargs)


def main() -> None:
    parser = argument_parser(__doc__, requests=300, rounds=3)
    parser.add_argument("--profile", action="store_true", help="also profile each call")
    args = parser.parse_args()
    exit_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp, database(args.backend, Path(tmp)) as url:
        settings = Settings(
            data_dir=Path(tmp) / "data", database_url=url, rate_limit_org_per_minute=0
        )
        api_token, agent_token = asyncio.run(admin.run_in_transaction(settings, _setup))
        with in_process_server(
            settings, counted=lambda s: "serving_processes" not in s, as_served=True
        ) as (server_url, statements, thread):
            headers = {"Authorization": f"Bearer {api_token}"}
            with httpx.Client(base_url=server_url, headers=headers, timeout=60) as client:
                slug = create_pipeline(client, "floor", "steps:\n  - command: 'true'\n")
                held = create_pipeline(
                    client,
                    "floor-held",
                    "steps:\n  - command: 'true'\n    agents: {queue: floor}\n",
                )
                seed_builds(url, slug, BUILDS, with_jobs=BUILDS, jobs_per_build=1)
                response = client.post(
                    f"/v2/organizations/{ORG}/pipelines/{held}/builds",
                    json={"commit": "HEAD", "branch": "main"},
                )
                if response.status_code != 201:
                    raise SystemExit(f"creating a build: {response.text}")
            access, job_id, job_token = _agent(server_url, agent_token)
            progress(f"measuring {len(CALLS)} calls, {args.rounds} rounds of {args.requests}")
            assert thread.ident is not None
            clock = time.pthread_getcpuclockid(thread.ident)
            calls = _requests(server_url, api_token, access, slug, (job_id, job_token))
            result = _measure(calls, clock, statements, args.requests, args.rounds)
        if args.profile:
            tokens = {"api": api_token, "agent": access, "job_id": job_id, "job": job_token}
            _profile(settings, slug, tokens, args.requests)
        emit(
            {
                "benchmark": "floor",
                "backend": args.backend,
                **database_info(url),
                "requests_per_round": args.requests,
                "calls": result,
            }
        )


if __name__ == "__main__":
    main()
