"""Web UI benchmark: what 50 browsers watching builds cost the agent API.

    python bench/web_watchers.py [--backend sqlite|postgresql] [--watchers 50] [--agents 4]
                                 [--jobs 500] [--jobs-per-build 10]

One server, real `kiteline agent` processes (`--agents` workers) and a pipeline of
`--jobs-per-build` trivial `true` jobs. Throughput is measured as bench/dispatch.py measures
it: builds created back to back through REST, timed from the first create to the last build
finished, in jobs per second. It is measured three times against the same server: with no one
watching, with `--watchers` signed-in clients (each its own session) doing what the build
page's JavaScript does: open a build's page as soon as the build is created (the builds are
dealt out to the watchers in turn, so every build being run is watched), hold its block
stream (the page's `data-block-url`: the server pushes the page's live block each time it
changes, build.js), and when a block shows the build finished, move on to its next build; and
with no one watching again. The watchers are
asyncio httpx clients in a thread of this process (no Chromium: the JavaScript's requests are
what load the server).

Prints one JSON line: the three throughputs, the cost in % of the mean of the two without
watchers, the server's CPU time per job in each run, and how many blocks the watchers were
sent (proof that they were live).
"""

from __future__ import annotations

import asyncio
import html
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
    web_sign_in,
    web_sign_in_async,
)
from dispatch import _wait_finished

_BLOCK_URL = re.compile(r'<body[^>]* data-block-url="([^"]+)"')
#: In the block's header once its build finished (templates/build/live.html).
_FINISHED = "<dt>Finished</dt>"


class Created:
    """The builds created since the watchers started (number and id), in order."""

    def __init__(self) -> None:
        self.builds: list[tuple[int, str]] = []
        self.changed = asyncio.Event()


class Tally:
    def __init__(self) -> None:
        self.events = 0
        self.pages = 0
        self.failures: list[str] = []


async def _sign_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(60, read=None),
        headers={"Accept": "text/html"},
        limits=httpx.Limits(max_connections=4),
    )
    return await web_sign_in_async(client)


#: What a watcher does (`--split` runs the first before the second, to split the watchers'
#: cost): open each build's page only; also hold the page's block stream until the build
#: finishes (what a browser does: build.js).
MODES = ("pages", "full")


async def _watch_build(
    client: httpx.AsyncClient,
    path: str,
    build_id: str,
    tally: Tally,
    stop: asyncio.Event,
    mode: str = "full",
) -> None:
    """One build page open until its build finishes (or the run ends): the page, then its
    block stream (`data-block-url`), whose pushed blocks it counts, until one shows the build
    finished."""
    page = await client.get(path)
    tally.pages += 1
    found = _BLOCK_URL.search(page.text)
    if page.status_code != 200 or found is None:
        tally.failures.append(f"page {path}: {page.status_code}")
        return
    if mode == "pages" or _FINISHED in page.text:
        return
    block_url = html.unescape(found.group(1))
    async with client.stream("GET", block_url, headers={"Accept": "text/event-stream"}) as stream:
        if stream.status_code != 200:
            tally.failures.append(f"stream {block_url}: {stream.status_code}")
            return
        stopped = asyncio.create_task(stop.wait())
        lines = stream.aiter_lines()
        finished = False
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
                if line.startswith("event: block"):
                    tally.events += 1
                elif line.startswith("data:") and _FINISHED in line:
                    finished = True
                elif line == "" and finished:
                    break
        except StopAsyncIteration:
            pass
        finally:
            stopped.cancel()


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


def _first_block(web: httpx.Client, url: str) -> None:
    """Open a block stream and read its first block (sent at once: no `have`)."""
    with web.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream:
        if stream.status_code != 200:
            raise SystemExit(f"block stream {url}: {stream.status_code}")
        data = False
        for line in stream.iter_lines():
            data = data or line.startswith("data:")
            if line == "" and data:
                return


def _per_request(k: Any, slug: str, numbers: list[int], idle_share: float) -> dict[str, float]:
    """Server CPU of a page open, of a fetch of the live block (what each watcher paid per
    burst of events before blocks were pushed, decision 0044), and of a block stream opened
    to read its first block (the stream's request, a feed's rendering and its write), one at
    a time on finished builds no one watched (less the idle share): a figure the machine's
    load disturbs less than a run's. The server keeps rendered live blocks (decision 0039),
    so the builds are split in three: the first third's pages are opened (their blocks
    rendered); the second third's live blocks are fetched twice, rendered the first time,
    from the cache the second; the last third's block streams are opened."""
    costs = {}
    web = web_sign_in(k.url)
    live = {"HX-Request": "true", "HX-Target": "build_live"}
    third = max(len(numbers) // 3, 1)
    try:
        passes = [
            ("page_open", numbers[:third], {}),
            ("live_block", numbers[third : 2 * third], live),
            ("live_block_cached", numbers[third : 2 * third], live),
            ("block_stream_first_block", numbers[2 * third :], None),
        ]
        for kind, some, headers in passes:
            before, started = cpu_seconds(k.server.pid), time.monotonic()
            for number in some:
                path = f"/{ORG}/{slug}/builds/{number}"
                if headers is None:
                    _first_block(web, f"{path}/live")
                    continue
                response = web.get(path, headers=headers)
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
        help="before the watched run, a run whose watchers only open the pages: the cost of "
        "the page opens and of the block streams",
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
        "live_blocks_received": tally.events,
        "build_pages_opened": tally.pages,
        **per_request,
        # What the watchers' page opens cost at that price, per job.
        "attributed_cpu_ms_per_job": {
            "page_opens": round(tally.pages * per_request["server_cpu_ms_per_page_open"] / jobs, 1),
        },
        "watcher_failures": len(tally.failures),
    }
    if partial:
        # Extra server CPU per job of each part: the pages, the block streams.
        pages = partial["pages"]["server_cpu_ms_per_job"] - cpu_alone
        result["split_runs"] = partial
        result["extra_cpu_ms_per_job_split"] = {
            "page_opens": round(pages, 1),
            "block_streams": round(cpu_extra - pages, 1),
        }
    if tally.failures:
        result["first_watcher_failure"] = tally.failures[0]
    emit(result)


if __name__ == "__main__":
    main()
