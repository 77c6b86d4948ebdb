"""Web UI benchmark: what 50 browsers watching builds cost the agent API.

    python bench/web_watchers.py [--backend sqlite|postgresql] [--watchers 50] [--agents 4]
                                 [--jobs 500] [--jobs-per-build 10]

One server, real `kiteline agent` processes (`--agents` workers) and a pipeline of
`--jobs-per-build` trivial `true` jobs. Throughput is measured as bench/dispatch.py measures
it: builds created back to back through REST, timed from the first create to the last build
finished, in jobs per second. It is measured three times against the same server: with no one
watching, with `--watchers` signed-in clients (each its own session) doing what the build
page's JavaScript does: open a build's page as soon as the build is created (the builds are
dealt out to the watchers in turn, so every build being run is watched), hold its Server-Sent
Events stream (the page's `data-live-url`), and on each event fetch the page's live block
(`HX-Target: build_live`) at most once per 250 ms and one at a time (kiteline.js, build.js);
when the build finishes, move on to its next build; and with no one watching again. The watchers are
asyncio httpx clients in a thread of this process (no Chromium: the JavaScript's requests are
what load the server).

Prints one JSON line: the three throughputs, the cost in % of the mean of the two without
watchers, the server's CPU time per job in each run, and how many live events and live-block
fetches the watchers made (proof that they were live).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    agents,
    argument_parser,
    bench_server,
    cpu_seconds,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    progress,
    summary_ms,
    web_sign_in,
    web_sign_in_async,
)
from dispatch import _wait_finished

REFRESH_DELAY_S = 0.25  # kiteline.js's REFRESH_DELAY_MS
_LIVE_URL = re.compile(r'<body[^>]* data-live-url="([^"]+)"')


class Created:
    """The builds created since the watchers started (number and id), in order."""

    def __init__(self) -> None:
        self.builds: list[tuple[int, str]] = []
        self.changed = asyncio.Event()


class Tally:
    def __init__(self) -> None:
        self.events = 0
        self.refreshes = 0
        self.pages = 0
        self.failures: list[str] = []
        self.refresh_latencies: list[float] = []


async def _sign_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(60, read=None),
        headers={"Accept": "text/html"},
        limits=httpx.Limits(max_connections=4),
    )
    return await web_sign_in_async(client)


#: What a watcher does (`--split` runs each in turn to split the watchers' cost): open each
#: build's page only; also hold its event stream until the build finishes; also fetch the live
#: block on events (what a browser does).
MODES = ("pages", "streams", "full")


async def _watch_build(
    client: httpx.AsyncClient,
    path: str,
    build_id: str,
    tally: Tally,
    stop: asyncio.Event,
    mode: str = "full",
) -> None:
    """One build page open until its build finishes (or the run ends)."""
    page = await client.get(path)
    tally.pages += 1
    found = _LIVE_URL.search(page.text)
    if page.status_code != 200 or found is None:
        tally.failures.append(f"page {path}: {page.status_code}")
        return
    if mode == "pages":
        return
    live_url = html.unescape(found.group(1))
    fetching = False
    again = False
    pending: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = set()

    async def fetch_live_block() -> None:
        nonlocal fetching, again
        fetching = True
        try:
            while True:
                again = False
                began = time.perf_counter()
                response = await client.get(
                    path, headers={"HX-Request": "true", "HX-Target": "build_live"}
                )
                tally.refresh_latencies.append(time.perf_counter() - began)
                tally.refreshes += 1
                if response.status_code != 200:
                    tally.failures.append(f"live block {path}: {response.status_code}")
                if not again:
                    return
        finally:
            fetching = False

    async def refresh_later() -> None:
        nonlocal pending, again
        await asyncio.sleep(REFRESH_DELAY_S)
        pending = None
        if fetching:
            again = True
            return
        task = asyncio.create_task(fetch_live_block())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async with client.stream("GET", live_url, headers={"Accept": "text/event-stream"}) as stream:
        if stream.status_code != 200:
            tally.failures.append(f"stream {live_url}: {stream.status_code}")
            return
        stopped = asyncio.create_task(stop.wait())
        lines = stream.aiter_lines()
        try:
            while not stop.is_set():
                next_line = asyncio.ensure_future(anext(lines))
                done, _ = await asyncio.wait(
                    {next_line, stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                if next_line not in done:
                    next_line.cancel()
                    break
                line = next_line.result()
                if not line.startswith("data:"):
                    continue
                tally.events += 1
                if pending is None and mode == "full":
                    pending = asyncio.create_task(refresh_later())
                data = json.loads(line.removeprefix("data:"))
                if data.get("event") == "build.finished" and data.get("build_id") == build_id:
                    break
        except StopAsyncIteration:
            pass
        finally:
            stopped.cancel()
    if pending is not None:
        await asyncio.gather(pending, return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)


async def _watcher(
    client: httpx.AsyncClient,
    slug: str,
    slot: int,
    every: int,
    created: Created,
    tally: Tally,
    stop: asyncio.Event,
    mode: str,
) -> None:
    """Watcher `slot` of `every` opens the page of build `slot`, `slot + every`, … of those
    created, each from its creation until it finishes: every build being run is watched."""
    while not stop.is_set():
        if slot >= len(created.builds):
            created.changed.clear()
            waiting = asyncio.create_task(created.changed.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()
            continue
        number, build_id = created.builds[slot]
        slot += every
        try:
            await _watch_build(
                client, f"/{ORG}/{slug}/builds/{number}", build_id, tally, stop, mode
            )
        except httpx.HTTPError as error:
            tally.failures.append(f"{type(error).__name__}: {error}")


class Watchers:
    """`count` signed-in watchers on an event loop in a thread of their own."""

    def __init__(self, url: str, slug: str, count: int, mode: str = "full") -> None:
        self.url, self.slug, self.count, self.mode = url, slug, count, mode
        self.tally = Tally()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.created = Created()
        self.stop_event = asyncio.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as error:  # told to the main thread
            self.error = error
            self.ready.set()

    async def _main(self) -> None:
        clients = [await _sign_in(self.url) for _ in range(self.count)]
        try:
            tasks = [
                asyncio.create_task(
                    _watcher(
                        client,
                        self.slug,
                        slot,
                        self.count,
                        self.created,
                        self.tally,
                        self.stop_event,
                        self.mode,
                    )
                )
                for slot, client in enumerate(clients)
            ]
            self.ready.set()
            await asyncio.gather(*tasks)
        finally:
            for client in clients:
                await client.aclose()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(timeout=300):
            raise SystemExit("the watchers did not sign in within 300s")
        if self.error is not None:
            raise SystemExit(f"the watchers failed: {self.error}")

    def tell_created(self, number: int, build_id: str) -> None:
        def tell() -> None:
            self.created.builds.append((number, build_id))
            self.created.changed.set()

        self.loop.call_soon_threadsafe(tell)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=60)


class Profiler:
    """py-spy sampling the server during one run (`--profile DIR`): its folded stacks go to
    DIR/<run>.txt, to split the server's CPU between what it did (see docs/performance.md)."""

    def __init__(self, directory: Path | None, pid: int, name: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "--output",
                str(directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # py-spy attaches

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)


def _run(
    k: Any,
    client: httpx.Client,
    slug: str,
    builds: int,
    jobs: int,
    watchers: Watchers | None,
    profile: Path | None = None,
    name: str = "",
) -> dict[str, Any]:
    profiler = Profiler(profile, k.server.pid, name)
    cpu_before = cpu_seconds(k.server.pid)
    own_before = time.process_time()  # this process: the REST client and the watchers' thread
    started = time.monotonic()
    numbers = []
    for _ in range(builds):
        build = create_build(client, slug)
        numbers.append(build["number"])
        if watchers is not None:
            watchers.tell_created(build["number"], build["id"])
    _wait_finished(client, slug, numbers, timeout=900, interval=0.5)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(k.server.pid) - cpu_before
    profiler.stop()
    return {
        "numbers": numbers,
        "jobs": jobs,
        "jobs_per_second": round(jobs / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "server_cpu_ms_per_job": round(cpu * 1000 / jobs, 1),
        "server_cpu_share": round(cpu / elapsed, 2),
        "bench_process_cpu_share": round((time.process_time() - own_before) / elapsed, 2),
    }


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key != "numbers"}


def _per_request(k: Any, slug: str, numbers: list[int], idle_share: float) -> dict[str, float]:
    """Server CPU of one request of each kind the watchers make, one at a time on finished
    builds no one watched (less the idle share): a figure the machine's load disturbs less
    than a run's. The server keeps rendered live blocks (decision 0039), so the builds are
    split in two: the first half's pages are opened (their blocks rendered); the second
    half's live blocks are fetched twice, rendered the first time, from the cache the
    second. A watcher of a running build mostly pays the rendered price (its every fetch
    follows a change)."""
    costs = {}
    web = web_sign_in(k.url)
    live = {"HX-Request": "true", "HX-Target": "build_live"}
    half = max(len(numbers) // 2, 1)
    try:
        passes = [
            ("page_open", numbers[:half], {}),
            ("live_block", numbers[half:], live),
            ("live_block_cached", numbers[half:], live),
        ]
        for kind, some, headers in passes:
            before, started = cpu_seconds(k.server.pid), time.monotonic()
            for number in some:
                response = web.get(f"/{ORG}/{slug}/builds/{number}", headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{kind} of build {number}: {response.status_code}")
            cpu = cpu_seconds(k.server.pid) - before - idle_share * (time.monotonic() - started)
            costs[f"server_cpu_ms_per_{kind}"] = round(cpu * 1000 / len(some), 1)
    finally:
        web.close()
    return costs


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--agents", type=int, default=4, help="workers of the agent process")
    parser.add_argument("--jobs", type=int, default=500, help="jobs in each run")
    parser.add_argument("--jobs-per-build", type=int, default=10)
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy (pip install py-spy) during each run, into DIR",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="before the watched run, a run whose watchers only open the pages and one whose "
        "watchers also hold the event streams (no live-block fetches): the cost of each part",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    per_build = max(args.jobs_per_build, 1)
    builds = max(args.jobs // per_build, 1)
    jobs = builds * per_build
    with (
        # 50 sign-ins from one address within a minute: the sign-in limit is off.
        bench_server(args.backend, web=True, KITELINE_LOGIN_ATTEMPTS_PER_MINUTE="0") as (url, k),
        k.client() as client,
    ):
        slug = create_pipeline(client, "Batch", "steps:\n" + "  - command: 'true'\n" * per_build)
        with agents(k, args.agents):
            time.sleep(2)  # let every agent register and start long-polling
            warm = max(builds // 10, 1)  # first requests fill caches of compiled statements
            _run(k, client, slug, warm, warm * per_build, None)
            # What the server spends with nothing to do (the agents' long polls, its sweeps):
            # a run that takes longer pays more of it, whatever it did for the jobs.
            idle_before, idle_started = cpu_seconds(k.server.pid), time.monotonic()
            time.sleep(10)
            idle_share = (cpu_seconds(k.server.pid) - idle_before) / (
                time.monotonic() - idle_started
            )
            progress(f"web-watchers ({args.backend}): {jobs} jobs, no watchers")
            alone = _run(k, client, slug, builds, jobs, None, args.profile, "alone")
            progress(f"alone: {_shown(alone)}")
            partial: dict[str, Any] = {}
            for mode in MODES[:-1] if args.split else ():
                part = Watchers(k.url, slug, args.watchers, mode)
                part.start()
                progress(f"web-watchers ({args.backend}): {jobs} jobs, watchers: {mode} only")
                try:
                    partial[mode] = _run(k, client, slug, builds, jobs, part, args.profile, mode)
                finally:
                    part.stop()
                progress(f"{mode}: {_shown(partial[mode])}")
            watchers = Watchers(k.url, slug, args.watchers)
            watchers.start()
            progress(f"web-watchers ({args.backend}): {jobs} jobs, {args.watchers} watchers")
            try:
                watched = _run(k, client, slug, builds, jobs, watchers, args.profile, "watched")
            finally:
                watchers.stop()
            progress(f"watched: {_shown(watched)}")
            # Again alone: a drift of the machine or of the growing tables shows as a gap
            # between the two runs without watchers.
            again = _run(k, client, slug, builds, jobs, None, args.profile, "again")
            progress(f"alone again: {_shown(again)}")
            per_request = _per_request(k, slug, again["numbers"], idle_share)
        info = database_info(url)
    tally = watchers.tally
    baseline = (alone["jobs_per_second"] + again["jobs_per_second"]) / 2
    cost = 100 * (1 - watched["jobs_per_second"] / baseline)
    for run in (alone, watched, again, *partial.values()):
        del run["numbers"]
        # Less what the same time idle would have cost.
        run["server_cpu_ms_per_job_less_idle"] = round(
            run["server_cpu_ms_per_job"] - idle_share * run["elapsed_s"] * 1000 / jobs, 1
        )
    cpu_alone = (alone["server_cpu_ms_per_job"] + again["server_cpu_ms_per_job"]) / 2
    cpu_extra = watched["server_cpu_ms_per_job"] - cpu_alone
    net_alone = (
        alone["server_cpu_ms_per_job_less_idle"] + again["server_cpu_ms_per_job_less_idle"]
    ) / 2
    net_extra = watched["server_cpu_ms_per_job_less_idle"] - net_alone
    result: dict[str, Any] = {
        "benchmark": "web-watchers",
        "backend": args.backend,
        **info,
        "agents": args.agents,
        "watchers": args.watchers,
        "jobs_per_build": per_build,
        "no_watchers": alone,
        "with_watchers": watched,
        "no_watchers_again": again,
        "throughput_cost_percent": round(cost, 1),
        "extra_server_cpu_ms_per_job": round(cpu_extra, 1),
        "extra_server_cpu_percent": round(100 * cpu_extra / cpu_alone, 1),
        "server_idle_cpu_share": round(idle_share, 3),
        "extra_server_cpu_percent_less_idle": round(100 * net_extra / net_alone, 1),
        "live_events_received": tally.events,
        "build_pages_opened": tally.pages,
        "live_block_fetches": tally.refreshes,
        "live_block_latency": summary_ms(tally.refresh_latencies),
        **per_request,
        # What the watchers' page opens and live-block fetches cost at those prices, per job.
        "attributed_cpu_ms_per_job": {
            "page_opens": round(tally.pages * per_request["server_cpu_ms_per_page_open"] / jobs, 1),
            "live_blocks": round(
                tally.refreshes * per_request["server_cpu_ms_per_live_block"] / jobs, 1
            ),
        },
        "watcher_failures": len(tally.failures),
    }
    if partial:
        # Extra server CPU per job of each part: the pages, the streams, the live blocks.
        pages = partial["pages"]["server_cpu_ms_per_job"] - cpu_alone
        streams = partial["streams"]["server_cpu_ms_per_job"] - cpu_alone
        result["split_runs"] = partial
        result["extra_cpu_ms_per_job_split"] = {
            "page_opens": round(pages, 1),
            "event_streams": round(streams - pages, 1),
            "live_blocks": round(cpu_extra - streams, 1),
        }
    if tally.failures:
        result["first_watcher_failure"] = tally.failures[0]
    emit(result)


if __name__ == "__main__":
    main()
