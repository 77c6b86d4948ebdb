"""Web UI benchmark: the log viewer's windows of a 50 MB job log, rendered by the server.

    python bench/web_log.py [--backend sqlite|postgresql] [--megabytes 50] [--requests 30]

One build's job gets a log of `--megabytes` of test-runner output (ANSI colours, `_bk;t=`
times on every line, a `---` section every 1000 lines), stored as the agent stores it (1 MiB
chunks, written with SQL), and is marked finished. A signed-in client fetches the viewer with
the log's first window (what opening the job's row loads), a window from the middle
(`after=`) and the last one (`before=` the end), one request at a time; each answer must be a
200 holding its window's lines. Prints one JSON line with the latencies, the server's CPU time
per request and the size of each answer.

With Chromium (Debian's, driven by Playwright) it also opens the job's `web_url` in a browser
and times the first log lines appearing (how many lines the page then holds too), and, for a
second build's job that a scripted agent keeps running, the time from a chunk's upload until
its line shows in the open page that follows the log.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    WEB_EMAIL,
    WEB_PASSWORD,
    argument_parser,
    bench_server,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    measured,
    progress,
    summary_ms,
    timed,
    web_sign_in,
)
from logs import _take_job
from sqlalchemy import insert, update

from kiteline.agent.api import AgentApi, Session
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import create_engine, utcnow
from kiteline.server.logs.models import LogChunk

CHUNK = 1024 * 1024
_LINE = re.compile(r'class="log-line" id="[^"]+-L(\d+)"')


def log_text(megabytes: int) -> bytes:
    """Test-runner output: a `---` section every 1000 lines, colours, a time on every line."""
    lines = []
    size = 0
    number = 0
    started = 1_700_000_000_000
    while size < megabytes * 1024 * 1024:
        stamp = f"\x1b_bk;t={started + number * 7}\x07"
        if number % 1000 == 0:
            line = f"{stamp}--- :pytest: Shard {number // 1000 + 1}\n"
        else:
            line = (
                f"{stamp}tests/test_module_{number % 97}.py::test_case_{number} "
                f"\x1b[32mPASSED\x1b[0m \x1b[36m[{number % 100:3d}%]\x1b[0m\n"
            )
        lines.append(line)
        size += len(line)
        number += 1
    return "".join(lines).encode()


async def _store_log(database_url: str, job_id: uuid.UUID, log: bytes) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for sequence, offset in enumerate(range(0, len(log), CHUNK)):
                data = log[offset : offset + CHUNK]
                await connection.execute(
                    insert(LogChunk).values(
                        id=uuid.uuid4(),
                        job_id=job_id,
                        sequence=sequence,
                        offset=offset,
                        size=len(data),
                        data=data,
                        created_at=utcnow(),
                    )
                )
            now = utcnow()
            await connection.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    state="finished", passed=True, exit_status=0, started_at=now, finished_at=now
                )
            )
    finally:
        await engine.dispose()


def _measure(
    client: httpx.Client, path: str, params: dict[str, Any], requests: int
) -> tuple[list[float], dict[str, int]]:
    def fetch() -> tuple[int, int]:
        response = client.get(path, params=params, headers={"HX-Request": "true"})
        lines = len(_LINE.findall(response.text))
        if response.status_code != 200 or lines < 100:
            raise SystemExit(f"the window is wrong: {response.status_code}, {lines} lines")
        return len(response.content), lines

    latencies, (size, lines) = timed(fetch, requests)
    return latencies, {"bytes": size, "lines": lines}


async def _running_job(url: str, agent_token: str) -> tuple[str, str]:
    """A scripted agent takes and starts the one job waiting: its id and job token."""
    async with httpx.AsyncClient(timeout=60) as http:
        runner, job_id, _ = await _take_job(
            AgentApi(http, Session(endpoint=f"{url}/v3"), agent_token)
        )
    return job_id, runner.token


def _browser(
    url: str, opened: str, follow_build: str, follow: tuple[str, str], samples: int
) -> dict[str, Any]:
    """First lines of the big log in Chromium, and chunks reaching a page following a log."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        return {"skipped": "chromium not found"}
    job_id, job_token = follow
    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--headless", "--no-sandbox"]
        )
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill(WEB_EMAIL)
        page.get_by_label("Password").fill(WEB_PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url("**/" + ORG)
        first_lines = []
        for _ in range(samples):
            page.goto("about:blank")
            began = time.perf_counter()
            page.goto(opened)
            page.locator(".log-line").first.wait_for()
            first_lines.append(time.perf_counter() - began)
        results["first_lines_in_chromium"] = {
            **summary_ms(first_lines),
            "lines_in_page": page.locator(".log-line").count(),
        }
        page.goto(follow_build)
        page.locator(".log-viewer[data-following]").wait_for()
        page.wait_for_timeout(1000)  # the viewer's stream is open
        arrivals = []
        offset = 0
        with httpx.Client(base_url=f"{url}/v3", timeout=30) as agent:
            for sequence in range(samples):
                data = f"chunk {sequence} arrived\n".encode()
                began = time.perf_counter()
                agent.post(
                    f"/jobs/{job_id}/chunks",
                    params={"sequence": sequence + 1, "offset": offset, "size": len(data)},
                    headers={"Authorization": f"Token {job_token}", "Content-Encoding": "gzip"},
                    content=gzip.compress(data),
                ).raise_for_status()
                page.get_by_text(f"chunk {sequence} arrived").wait_for()
                arrivals.append(time.perf_counter() - began)
                offset += len(data)
        results["chunk_to_chromium"] = summary_ms(arrivals)
        browser.close()
    return results


def main() -> None:
    exit_on_sigterm()
    args = argument_parser(__doc__, megabytes=50, requests=30, browser_samples=10).parse_args()
    log = log_text(args.megabytes)
    with bench_server(args.backend, web=True) as (url, k):
        with k.client() as api:
            slug = create_pipeline(api, "Logs", "steps:\n  - command: make test\n")
            build = create_build(api, slug)
            job_id = build["jobs"][0]["id"]
            asyncio.run(_store_log(url, uuid.UUID(job_id), log))
            followed_build = create_build(api, slug)
        followed = asyncio.run(_running_job(k.url, k.agent_token))
        progress(f"log of {len(log)} bytes in {len(range(0, len(log), CHUNK))} chunks")
        path = f"/{ORG}/{slug}/builds/{build['number']}/jobs/{job_id}/log"
        results: dict[str, Any] = {}
        client = web_sign_in(k.url)
        try:
            for name, params in (
                ("first_window", {}),
                ("middle_window", {"after": len(log) // 2, "line": 1}),
                ("last_window", {"before": len(log), "line": 1_000_000_000}),
            ):
                measure = partial(_measure, client, path, params, args.requests)
                results[name] = measured(k, name, args.requests, measure)
        finally:
            client.close()
        build_path = f"/{ORG}/{slug}/builds"
        results.update(
            _browser(
                k.url,
                f"{build_path}/{build['number']}#{job_id}",
                f"{build_path}/{followed_build['number']}#{followed[0]}",
                followed,
                args.browser_samples,
            )
        )
        progress(
            f"browser: {results.get('first_lines_in_chromium')}, {results.get('chunk_to_chromium')}"
        )
        emit(
            {
                "benchmark": "web-log",
                "backend": args.backend,
                "database": database_info(url),
                "log_bytes": len(log),
                "requests": args.requests,
                **results,
            }
        )


if __name__ == "__main__":
    main()
