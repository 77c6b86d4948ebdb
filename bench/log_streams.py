"""Open log streams for bench/web_watchers.py: jobs that print, and browsers following them.

Printers: `count` jobs printing at once, on a queue of their own (`printers`, an agent process
of `count` workers), each `lines` lines a quarter of a second apart (about ten seconds of a
job's life). A thread keeps them coming: it creates a build as soon as fewer than `2 * count`
are unfinished (a queued one is always ready for a worker that frees up), asking about the
oldest unfinished build every half second (REST, `exclude_jobs`). They print through the runs
without followers too, so that what a run with followers costs more is what following costs,
not what printing does.

Followers: signed-in clients doing what the web log viewer (static/log.js) does for a job
that is running: load the viewer (`…/jobs/<id>/log`, its first window), open its live stream
from where it is (`data-live-url` and `&from=<byte>&line=<n>`, `/organizations/<org>/live?log=
<id>&…`: the log's size each time it grows, read from the chunks every 0.5 s by the server
while someone follows, with the window from the follower's position: decision 0049), append
the pushed window when it starts where the viewer is and the viewer is at its tail, else ask
for the window after what it has (`data-log-url?after=<byte>&line=<n>`) when the size says the
log grew, and then open the stream again from there; stop at the window that says the log is
complete. A browser
hears of the job's finish on the build page's own stream (build.js) and asks for the tail once
more; the followers have no build page open, so they ask once more when their stream has been
quiet for 1.5 s (the agent sends a chunk every second while the job prints). Then the next
running job: follower `slot` takes printer `slot % count` of those running, so the followers
are spread over the printers.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import threading
import time
from typing import Any

import httpx
from common import (
    ORG,
    Kiteline,
    cpu_seconds,
    create_build,
    create_pipeline,
    web_sign_in,
    web_sign_in_async,
)

PRINTER_QUEUE = "printers"
#: Seconds between two lines a printer prints.
PAUSE = 0.25
#: A stream quiet this long after its log stopped growing: ask for the tail once more.
QUIET_SECONDS = 1.5

_LIVE_URL = re.compile(r'class="log-viewer"[^>]* data-log-url="([^"]+)" data-live-url="([^"]+)"')
_WINDOW = re.compile(
    r'<div class="log-window" data-from="\d+" data-to="(\d+)" data-size="(\d+)"'
    r' data-line="\d+" data-next-line="(\d+)"( data-complete)?'
)


def printer_pipeline(client: httpx.Client, lines: int) -> str:
    # `$$`: the pipeline's configuration is interpolated as an upload's is.
    command = f"for i in $$(seq 1 {lines}); do echo line $$i of {lines}; sleep {PAUSE}; done"
    return create_pipeline(
        client,
        "Printer",
        f'steps:\n  - command: "{command}"\n    agents:\n      queue: {PRINTER_QUEUE}\n',
    )


class Printers(threading.Thread):
    """Keeps `count` printer jobs running (and as many queued) while the benchmark runs."""

    def __init__(self, k: Kiteline, slug: str, count: int) -> None:
        super().__init__(daemon=True)
        self.k, self.slug, self.count = k, slug, count
        #: Builds not known to be finished, oldest first: (number, job id).
        self.unfinished: list[tuple[int, str]] = []
        #: Jobs a follower saw complete (told from the followers' thread).
        self.ended: set[str] = set()
        #: Builds seen finished, in order: (number, job id).
        self.finished: list[tuple[int, str]] = []
        self.created = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def running(self) -> list[tuple[int, str]]:
        """The oldest `count` unfinished: the ones being run (jobs are given out in order)."""
        return [build for build in self.unfinished if build[1] not in self.ended][: self.count]

    def run(self) -> None:
        try:
            with self.k.client() as client:
                while not self.stopping.is_set():
                    self._step(client)
                    self.stopping.wait(0.5)
        except BaseException as error:  # told by `stop`
            self.error = error

    def _step(self, client: httpx.Client) -> None:
        while self.unfinished:
            number, job_id = self.unfinished[0]
            if job_id not in self.ended:
                build = client.get(
                    f"/v2/organizations/{ORG}/pipelines/{self.slug}/builds/{number}",
                    params={"exclude_jobs": "true", "exclude_pipeline": "true"},
                ).json()
                if not build["finished_at"]:
                    break
            self.unfinished = self.unfinished[1:]
            self.ended.discard(job_id)
            self.finished.append((number, job_id))
        while len(self.unfinished) < 2 * self.count:
            build = create_build(client, self.slug)
            self.unfinished = [*self.unfinished, (build["number"], build["jobs"][0]["id"])]
            self.created += 1

    def wait_running(self, timeout: float = 60) -> None:
        """Until the printers run (their agent took its first jobs)."""
        deadline = time.monotonic() + timeout
        while self.created < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)

    def stop(self) -> None:
        """No more printers; those not finished are canceled, and given two seconds to stop."""
        self.stopping.set()
        self.join(timeout=30)
        if self.error is not None:
            raise SystemExit(f"the printers failed: {self.error}")
        with self.k.client() as client:
            for number, _ in self.unfinished:
                client.put(f"/v2/organizations/{ORG}/pipelines/{self.slug}/builds/{number}/cancel")
        time.sleep(2)


def request_costs(
    k: Kiteline, printers: Printers, idle_share: float, requests: int = 60
) -> dict[str, float | None]:
    """Server CPU of a log viewer's load and of a window of its log (the whole log of a
    finished printer: `lines` lines, where a follower's window has the four or so printed
    since its last), `requests` of each one at a time, over the last 30 finished printers
    (less the idle share)."""
    some = list(itertools.islice(itertools.cycle(printers.finished[-30:]), requests))
    costs: dict[str, float | None] = {"log_viewer": None, "log_window": None}
    if not some:
        return {f"server_cpu_ms_per_{kind}": None for kind in costs}
    web = web_sign_in(k.url)
    try:
        for kind, params in (("log_viewer", None), ("log_window", {"after": 0, "line": 1})):
            before, started = cpu_seconds(k.server.pid), time.monotonic()
            for number, job_id in some:
                path = f"/{ORG}/{printers.slug}/builds/{number}/jobs/{job_id}/log"
                answer = web.get(path, params=params, headers={"HX-Request": "true"})
                if answer.status_code != 200:
                    raise SystemExit(f"{kind} {path}: {answer.status_code}")
            cpu = cpu_seconds(k.server.pid) - before - idle_share * (time.monotonic() - started)
            costs[kind] = round(cpu * 1000 / len(some), 1)
    finally:
        web.close()
    return {f"server_cpu_ms_per_{kind}": cost for kind, cost in costs.items()}


class Tally:
    def __init__(self) -> None:
        self.viewers = 0  # log viewers loaded
        self.streams = 0  # live streams opened
        self.events = 0  # log sizes the streams told
        self.pushed = 0  # windows the streams pushed that the followers appended
        self.windows = 0  # windows asked for after the first
        self.lines = 0  # lines received in those windows
        self.completed = 0  # logs followed to their complete window
        self.failures: list[str] = []


class _Viewer:
    """What the viewer knows of its log: the last window's end, size, next line, complete."""

    def __init__(self, fragment: str) -> None:
        self.to = self.size = 0
        self.next_line = 1
        self.complete = False
        self.read(fragment)

    def read(self, fragment: str) -> int:
        """Take in a window (or the viewer with its first): the lines it brought."""
        found = _WINDOW.search(fragment)
        if found is None:
            raise ValueError(f"no log window in {fragment[:200]!r}")
        self.to, self.size, self.next_line = (int(found.group(n)) for n in (1, 2, 3))
        self.complete = found.group(4) is not None
        return fragment.count('class="log-line"')

    @property
    def done(self) -> bool:
        return self.complete and self.to >= self.size


async def _later(client: httpx.AsyncClient, log_url: str, viewer: _Viewer, tally: Tally) -> None:
    answer = await client.get(
        log_url,
        params={"after": viewer.to, "line": viewer.next_line},
        headers={"HX-Request": "true"},
    )
    if answer.status_code != 200:
        raise ValueError(f"window of {log_url}: {answer.status_code}")
    tally.windows += 1
    tally.lines += viewer.read(answer.text)


async def follow_log(
    client: httpx.AsyncClient, path: str, tally: Tally, stop: asyncio.Event
) -> bool:
    """The log viewer of the job at `path` (…/jobs/<id>), following until the log is
    complete (True) or `stop` is set (False)."""
    answer = await client.get(f"{path}/log", headers={"HX-Request": "true"})
    tally.viewers += 1
    urls = _LIVE_URL.search(answer.text)
    if answer.status_code != 200 or urls is None:
        raise ValueError(f"log viewer {path}: {answer.status_code}")
    log_url, live_url = (html.unescape(url) for url in urls.groups())
    viewer = _Viewer(answer.text)
    if viewer.done or "data-following" not in answer.text:
        return True
    while not viewer.done:
        position = f"&from={viewer.to}&line={viewer.next_line}"
        if not await _follow_stream(client, log_url, live_url + position, viewer, tally, stop):
            return False
    tally.completed += 1
    return True


async def _follow_stream(
    client: httpx.AsyncClient,
    log_url: str,
    live_url: str,
    viewer: _Viewer,
    tally: Tally,
    stop: asyncio.Event,
) -> bool:
    """Follow one stream until the log is complete or a fetched window (the stream pushed no
    window from where the viewer was) asks for the stream to be opened again from where the
    viewer now is (True), or until `stop` is set or the stream ended (False)."""
    async with client.stream("GET", live_url, headers={"Accept": "text/event-stream"}) as stream:
        if stream.status_code != 200:
            raise ValueError(f"log stream {live_url}: {stream.status_code}")
        tally.streams += 1
        lines = stream.aiter_lines()
        stopped = asyncio.create_task(stop.wait())
        # The read in flight stays across a quiet spell (cancelling it would close the stream).
        reading: asyncio.Future[str] | None = None
        try:
            while not viewer.done:
                reading = reading or asyncio.ensure_future(anext(lines))
                done, _ = await asyncio.wait(
                    {reading, stopped}, timeout=QUIET_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if stopped in done:
                    return False
                if reading not in done:  # quiet: the job may have finished
                    await _later(client, log_url, viewer, tally)
                    continue
                line, reading = reading.result(), None
                if not line.startswith("data:"):
                    continue
                data = json.loads(line[5:])
                if data.get("event") != "log":
                    continue
                tally.events += 1
                if viewer.to < viewer.size:  # not at the tail
                    continue
                if data.get("html") and data["from"] == viewer.to:
                    tally.pushed += 1
                    tally.lines += viewer.read(data["html"])
                elif data["size"] > viewer.to:
                    await _later(client, log_url, viewer, tally)
                    return True
        except StopAsyncIteration:  # the stream ended (after STREAM_SECONDS): follow again
            return False
        finally:
            stopped.cancel()
            if reading is not None:
                reading.cancel()
    return True


class Followers:
    """`count` signed-in log followers on an event loop in a thread of their own: signed in
    once (`start`), following from `begin` to `end`."""

    def __init__(self, url: str, printers: Printers, count: int) -> None:
        self.url, self.printers, self.count = url, printers, count
        self.tally = Tally()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.clients: list[httpx.AsyncClient] = []
        self.following: asyncio.Future[Any] | None = None
        self.stop_event: asyncio.Event | None = None

    def _call(self, coroutine: Any, timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def start(self) -> None:
        self.thread.start()

        async def sign_in() -> list[httpx.AsyncClient]:
            clients = []
            for _ in range(self.count):
                client = httpx.AsyncClient(
                    base_url=self.url,
                    timeout=httpx.Timeout(60, read=None),
                    headers={"Accept": "text/html"},
                    limits=httpx.Limits(max_connections=4),
                )
                clients.append(await web_sign_in_async(client))
            return clients

        self.clients = self._call(sign_in())

    async def _follower(self, client: httpx.AsyncClient, slot: int, stop: asyncio.Event) -> None:
        printers = self.printers
        while not stop.is_set():
            running = printers.running()
            if not running:
                await asyncio.sleep(0.2)
                continue
            number, job_id = running[slot % len(running)]
            path = f"/{ORG}/{printers.slug}/builds/{number}/jobs/{job_id}"
            try:
                if await follow_log(client, path, self.tally, stop):
                    printers.ended.add(job_id)
            except (httpx.HTTPError, ValueError) as error:
                self.tally.failures.append(f"{type(error).__name__}: {error}")
                await asyncio.sleep(0.5)

    def begin(self) -> None:
        async def begin() -> None:
            stop = self.stop_event = asyncio.Event()
            self.following = asyncio.gather(
                *(self._follower(client, slot, stop) for slot, client in enumerate(self.clients))
            )

        self._call(begin())

    def end(self) -> None:
        async def end() -> None:
            if self.stop_event is not None and self.following is not None:
                self.stop_event.set()
                await self.following

        self._call(end(), timeout=120)

    def close(self) -> None:
        async def close() -> None:
            for client in self.clients:
                await client.aclose()

        self._call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)

    def reset(self) -> None:
        """Count from here (between two followings)."""
        self.tally = Tally()

    def counts(self) -> dict[str, int]:
        tally = self.tally
        return {
            "log_viewers_loaded": tally.viewers,
            "log_streams_opened": tally.streams,
            "log_sizes_streamed": tally.events,
            "log_windows_pushed": tally.pushed,
            "log_windows_fetched": tally.windows,
            "log_lines_received": tally.lines,
            "logs_followed_to_the_end": tally.completed,
            "log_follower_failures": len(tally.failures),
        }
