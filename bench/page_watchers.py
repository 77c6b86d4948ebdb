"""Build-page watchers for bench/web_watchers.py: signed-in clients doing what the build page's
JavaScript does (open the page, hold its block stream until the build finishes), on an event
loop in a thread of their own."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time

import httpx
from common import ORG, web_sign_in_async

_BLOCK_URL = re.compile(r'<body[^>]* data-block-url="([^"]+)"')
#: In the block's header once its build finished (templates/build/live.html).
_FINISHED = "<dt>Finished</dt>"


class Created:
    """The builds created since the watchers started (pipeline, number and id), in order."""

    def __init__(self) -> None:
        self.builds: list[tuple[str, int, str]] = []
        self.changed = asyncio.Event()


class Tally:
    def __init__(self) -> None:
        self.events = 0
        self.pages = 0
        self.failures: list[str] = []
        #: Watchers on a build page now (a watched run ends when they all left theirs).
        self.active = 0


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
        slug, number, build_id = created.builds[slot]
        slot += every
        tally.active += 1
        try:
            await _watch_build(
                client, f"/{ORG}/{slug}/builds/{number}", build_id, tally, stop, mode
            )
        except httpx.HTTPError as error:
            tally.failures.append(f"{type(error).__name__}: {error}")
        finally:
            tally.active -= 1


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

    def tell_created(self, number: int, build_id: str, slug: str | None = None) -> None:
        def tell() -> None:
            self.created.builds.append((slug or self.slug, number, build_id))
            self.created.changed.set()

        self.loop.call_soon_threadsafe(tell)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until every watcher left its build's page (the last blocks read), so that the next
        run without watchers has none."""
        deadline = time.monotonic() + timeout
        while self.tally.active and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=60)
