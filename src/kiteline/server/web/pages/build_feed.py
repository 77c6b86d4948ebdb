"""The build page's live block pushed to its viewers: rendered once per change of the build,
whatever the number of browsers watching it, and written to each one's event stream.

Before this, every browser on a build page heard the build's events and then fetched the
block (`HX-Target: build_live`): one request per burst of events per watcher, each paying
the session, the viewer, the routing and middlewares, and the block's reads and rendering
(5 to 6 ms of CPU; decision 0039, docs/performance.md "Web UI"). Now a process keeps one *feed*
per build that some stream of it follows (`BuildFeeds.follow`):

- it listens to the build's topics on the process's LiveHub (the outbox reader every live
  page shares; wake-ups cross replicas by kit/notify, and each process renders for its own
  streams), and to those of the builds the block links to (triggered builds, whose states
  show in its rows), taken from each rendering;
- `FEED_INTERVAL_SECONDS` after an event it renders the block in a read-only transaction of
  its own (build.py's `feed_block`, through the same cache as the page: build_live.py), so
  that a burst of events is one rendering and there is at most one per interval; the events
  of the interval are drained unread (the block says what they changed);
- a rendering equal to the last one (same digest) is not sent again;
- a stream that starts (or reconnects) gets the feed's current block at once, unless it
  already shows it: the page sends the digest of the block it was rendered with (`have`),
  a reconnecting browser the digest of the last block it got (Last-Event-ID, the SSE `id`).

Authorization stays per stream: the route (build.py, `…/builds/{number}/live`) opens a
stream only for a viewer who may see the build (another organization's: 404), and the block
holds nothing of any viewer but the CSRF token, a placeholder in the shared rendering
(build_live.py's `CSRF_PLACEHOLDER`) replaced per stream with that viewer's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.kit.db import transaction
from kiteline.server.kit.errors import NotFound
from kiteline.server.web.live import (
    HEARTBEAT_SECONDS,
    RECONNECT_MILLISECONDS,
    STREAM_SECONDS,
    LiveHub,
    subject_topic,
)
from kiteline.server.web.pages.build_live import CSRF_PLACEHOLDER

log = logging.getLogger("kiteline.web.build_feed")

#: A feed renders this long after an event, so at most this often: the events of a burst (a
#: job assigned, started and finished within a moment, several agents finishing together)
#: make one block. The page's JavaScript waited as long before its fetch, when it fetched.
FEED_INTERVAL_SECONDS = 0.25
#: After a rendering failed (the database restarting), the next try waits this long.
RETRY_SECONDS = 1.0
#: The SSE event type of a pushed block (build.js listens to it).
BLOCK_EVENT = "block"

_PLACEHOLDER = CSRF_PLACEHOLDER.encode()


def block_digest(html: str) -> str:
    """The block's fingerprint (over the CSRF placeholder: equal for every viewer)."""
    return hashlib.blake2b(html.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """What `feed_block` makes of a build: the block's HTML (with the CSRF placeholder) and the
    builds whose events change it (the build and those it links to)."""

    html: str
    follows: frozenset[uuid.UUID]


@dataclass(frozen=True)
class Block:
    """One rendering as a Server-Sent Event: `id` is its digest, the data its HTML, a line
    each (a carriage return, which SSE would read as a line end, written as `&#13;`)."""

    digest: str
    message: bytes

    @classmethod
    def of(cls, html: str) -> Block:
        digest = block_digest(html)
        lines = html.replace("\r\n", "\n").replace("\r", "&#13;").split("\n")
        data = "".join(f"data: {line}\n" for line in lines)
        return cls(digest, f"id: {digest}\nevent: {BLOCK_EVENT}\n{data}\n".encode())

    def for_viewer(self, csrf_token: str) -> bytes:
        return self.message.replace(_PLACEHOLDER, csrf_token.encode())


#: Told to a feed's streams when its build no longer exists: they end.
GONE = Block("", b"")

Render = Callable[[AsyncSession, uuid.UUID], Awaitable[Rendered]]


class Listener:
    """One stream's view of its feed: the newest block, and whether it came since last asked."""

    def __init__(self) -> None:
        self.block: Block | None = None
        self._changed = asyncio.Event()

    def tell(self, block: Block) -> None:
        self.block = block
        self._changed.set()

    async def next(self, wait_seconds: float) -> Block | None:
        """The newest block once one came that was not yet taken; None after `wait_seconds`."""
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    await self._changed.wait()
        if not self._changed.is_set():
            return None
        self._changed.clear()
        return self.block


@dataclass
class _Feed:
    organization_id: uuid.UUID
    build_id: uuid.UUID
    listeners: set[Listener] = field(default_factory=set)
    block: Block | None = None
    task: asyncio.Task[None] | None = None


class BuildFeeds:
    """A process's feeds, by build: created by the first stream of a build, ended with its
    last."""

    def __init__(
        self,
        hub: LiveHub,
        sessions: async_sessionmaker[AsyncSession],
        render: Render,
        *,
        interval_seconds: float = FEED_INTERVAL_SECONDS,
    ) -> None:
        self._hub = hub
        self._sessions = sessions
        self._render = render
        self._interval = interval_seconds
        self._feeds: dict[uuid.UUID, _Feed] = {}
        self._ending: set[asyncio.Task[None]] = set()
        #: How many renderings the feeds made (one per burst of a build's events, however many
        #: streams follow it).
        self.renderings = 0

    @property
    def followed(self) -> int:
        return len(self._feeds)

    @asynccontextmanager
    async def follow(
        self, organization_id: uuid.UUID, build_id: uuid.UUID
    ) -> AsyncIterator[Listener]:
        """Blocks of the build from now on, the current one first (when the feed has one; a new
        feed renders it at once). The caller has checked the viewer may see the build."""
        feed = self._feeds.get(build_id)
        if feed is None or feed.task is None or feed.task.done():  # none, or one that failed
            feed = _Feed(organization_id, build_id)
            self._feeds[build_id] = feed
            feed.task = asyncio.create_task(self._run(feed))
        listener = Listener()
        feed.listeners.add(listener)
        if feed.block is not None:
            listener.tell(feed.block)
        try:
            yield listener
        finally:
            feed.listeners.discard(listener)
            if not feed.listeners and self._feeds.get(build_id) is feed:
                del self._feeds[build_id]
                self._end(feed)

    async def aclose(self) -> None:
        for feed in list(self._feeds.values()):
            self._end(feed)
        self._feeds.clear()
        for task in list(self._ending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _end(self, feed: _Feed) -> None:
        if feed.task is not None and not feed.task.done():
            feed.task.cancel()
            self._ending.add(feed.task)
            feed.task.add_done_callback(self._ending.discard)

    def _topics(self, feed: _Feed, builds: Iterable[uuid.UUID]) -> frozenset[str]:
        return frozenset(
            subject_topic(feed.organization_id, "build", build_id)
            for build_id in {feed.build_id, *builds}
        )

    def _publish(self, feed: _Feed, block: Block) -> None:
        feed.block = block
        for listener in feed.listeners:
            listener.tell(block)

    async def _render_once(self, feed: _Feed) -> Rendered | None:
        """The block as the database has it now; None when that could not be read."""
        try:
            async with transaction(self._sessions, read_only=True) as session:
                rendered = await self._render(session, feed.build_id)
        except NotFound:
            raise
        except Exception:  # the database may be restarting: the streams hear later
            log.warning("could not render build %s's live block", feed.build_id, exc_info=True)
            return None
        self.renderings += 1
        return rendered

    async def _run(self, feed: _Feed) -> None:
        topics = self._topics(feed, ())
        try:
            while True:
                async with self._hub.subscribe(topics) as subscription:
                    # Subscribed before rendering: what changes from here on is heard.
                    while True:
                        rendered = await self._render_once(feed)
                        if rendered is None:
                            await asyncio.sleep(RETRY_SECONDS)
                            continue
                        if feed.block is None or feed.block.digest != block_digest(rendered.html):
                            self._publish(feed, Block.of(rendered.html))
                        wanted = self._topics(feed, rendered.follows)
                        if wanted != topics:  # a triggered build appeared: listen to it too
                            topics = wanted
                            break
                        while await subscription.next(HEARTBEAT_SECONDS) is None:
                            pass
                        # The rest of the burst: one rendering for all of it.
                        await asyncio.sleep(self._interval)
                        subscription.take_ready()  # what came meanwhile is in the next block
        except NotFound:
            self._publish(feed, GONE)


async def block_stream(
    feeds: BuildFeeds,
    *,
    organization_id: uuid.UUID,
    build_id: uuid.UUID,
    csrf_token: str,
    have: str | None,
    stream_seconds: float = STREAM_SECONDS,
) -> AsyncIterator[bytes]:
    """The body of a build page's block stream: the current block unless its digest is
    `have`, then each new one, until `stream_seconds` passed (the browser reconnects, which
    checks its session again) or the build is gone."""
    deadline = time.monotonic() + stream_seconds
    async with feeds.follow(organization_id, build_id) as listener:
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
        shown = have
        while (left := deadline - time.monotonic()) > 0:
            block = await listener.next(min(HEARTBEAT_SECONDS, left))
            if block is None:
                yield b": keep-alive\n\n"
            elif block is GONE:
                return
            elif block.digest != shown:
                shown = block.digest
                yield block.for_viewer(csrf_token)
