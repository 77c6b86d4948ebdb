"""Live updates for web pages: one reader of the events outbox per process, fanned out by
topic to the pages' Server-Sent Event streams; and the sizes of the logs pages follow.

The outbox is the only source: a page learns what the webhooks learn, in the same order, and
a replica that missed a wake-up still finds the events in the table. Wake-ups (`kit/notify`'s
`outbox` notifier: in process, and across replicas by PostgreSQL NOTIFY) only say "look now";
the reader also looks every `live_poll_seconds`, for writers whose wake-ups cannot reach this
process (another process on SQLite, `kiteline worker`). The reader runs only while some page
listens, and reads once per wake-up however many pages listen; wake-ups within
`BATCH_SECONDS` of each other share one read, and a page's stream writes what one read brought
it as one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.events import outbox as events
from kiteline.server.events.outbox import Event
from kiteline.server.kit.db import transaction
from kiteline.server.kit.notify import Notifier, outbox
from kiteline.server.logs import service as logs

log = logging.getLogger("kiteline.web.live")

#: How many events one read takes; a page behind by more than a catch-up's worth resyncs.
READ_BATCH = 500
CATCH_UP_LIMIT = 200
#: A queue this long means the page cannot keep up: it is told to resync instead.
QUEUE_LIMIT = 200
#: Ids skipped by a read may belong to transactions still committing (PostgreSQL hands out
#: ids before commit); they are looked for again this long, then taken as rolled back.
GAP_PATIENCE_SECONDS = 30.0
MAX_TRACKED_GAPS = 1000
#: After a wake-up the reader waits this long before it reads, so that the events committed
#: meanwhile (a busy server commits dozens a second: each job's assignment, start, finish…)
#: are read by one query and reach each page as one write, rather than one read and one write
#: per event (docs/performance.md, `bench/web_watchers.py`). A page hears of a change at most
#: this much later.
BATCH_SECONDS = 0.1


def organization_topic(organization_id: uuid.UUID) -> str:
    return f"org:{organization_id}"


def subject_topic(organization_id: uuid.UUID, kind: str, subject_id: uuid.UUID | str) -> str:
    """`kind` is pipeline, build, job or agent. Topics carry the organization, so a page can
    only ever hear of its own organization's objects, whatever ids it asks for."""
    return f"org:{organization_id}:{kind}:{subject_id}"


SUBJECT_KEYS = {
    "pipeline_id": "pipeline",
    "build_id": "build",
    "job_id": "job",
    "agent_id": "agent",
}

#: A job's log grows by chunks that are not outbox events (one a second per running job):
#: pages following a log hear `{"event": "log", "job_id", "size"}` from a look at the chunk
#: table this often, made only while some page follows a log.
LOG_POLL_SECONDS = 0.5
LOG_KIND = "log"
#: A follower whose log grew by more than this since its position is told the size only (and
#: fetches, as a follower without a position does): a window is at most 64 KiB anyway.
PUSH_BYTES = 256 * 1024


@dataclass(frozen=True)
class PushedWindow:
    """A log's window from a follower's position, as the window route answers it: its start
    and end, the number of the line after it, whether the log has more after it, its HTML."""

    start: int
    end: int
    next_line: int
    more_after: bool
    html: str


#: Renders the window of a job's log from (byte, line number), as the log window route does
#: (web/pages/log_windows.py); the app gives it to the hub.
LogWindowRenderer = Callable[[uuid.UUID, int, int], Awaitable[PushedWindow]]


def log_topic(organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """Callers check that the job is the organization's: log sizes are read by job id alone."""
    return subject_topic(organization_id, LOG_KIND, job_id)


def _job_of_log_topic(topic: str) -> uuid.UUID | None:
    parts = topic.split(":")
    if len(parts) != 4 or parts[2] != LOG_KIND:
        return None
    try:
        return uuid.UUID(parts[3])
    except ValueError:
        return None


def topics_of(event: Event) -> list[str]:
    """The organization's topic and one per object the event names (build events name their
    pipeline and build; job events their job and build; agent events their agent)."""
    topics = [organization_topic(event.organization_id)]
    for key, kind in SUBJECT_KEYS.items():
        value = (event.data or {}).get(key)
        if value:
            topics.append(subject_topic(event.organization_id, kind, value))
    return topics


@dataclass(frozen=True)
class LiveMessage:
    """What a page receives: an outbox event (its id, name and data), or `resync`, which asks
    the page to reload its live parts because messages may have been missed."""

    event_id: int | None
    name: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> LiveMessage:
        return cls(event.id, event.name, dict(event.data or {}))

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        """One Server-Sent Event: the default `message` type, the name inside the data (once
        per message: a pushed log window goes to every follower at its position)."""
        body = json.dumps({"event": self.name, **self.data}, separators=(",", ":"))
        head = f"id: {self.event_id}\n" if self.event_id is not None else ""
        return f"{head}data: {body}\n\n".encode()


RESYNC = LiveMessage(None, "resync", {})


class Subscription:
    def __init__(
        self, topics: frozenset[str], log_positions: Mapping[str, tuple[int, int]] | None = None
    ) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.overflowed = False
        self.log_sizes_told: dict[str, int] = {}
        #: Per followed log's topic, what the follower has: (byte, number of the next line).
        #: Its new lines are pushed from there; a log without one is told its size only.
        self.log_positions: dict[str, tuple[int, int]] = dict(log_positions or {})

    def offer(self, message: LiveMessage) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    def take_ready(self) -> list[LiveMessage]:
        """The messages already queued (none after an overflow: `next` tells RESYNC)."""
        ready: list[LiveMessage] = []
        while not self.overflowed and not self.queue.empty():
            ready.append(self.queue.get_nowait())
        return ready

    async def next(self, wait_seconds: float) -> LiveMessage | None:
        """The next message; RESYNC once after an overflow; None when `wait_seconds` passed."""
        if self.overflowed:
            self.overflowed = False
            while not self.queue.empty():
                self.queue.get_nowait()
            return RESYNC
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                return await self.queue.get()
        return None


class LiveHub:
    """Subscriptions by topic and the one outbox reader that feeds them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float,
        notifier: Notifier = outbox,
        batch_seconds: float = BATCH_SECONDS,
        log_windows: LogWindowRenderer | None = None,
    ) -> None:
        self._sessions = sessions
        self._log_windows = log_windows
        self._poll_seconds = poll_seconds
        self._batch_seconds = batch_seconds
        self._notifier = notifier
        self._by_topic: dict[str, set[Subscription]] = defaultdict(set)
        self._count = 0
        self._reader: asyncio.Task[None] | None = None
        self._log_watcher: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._last_id = 0
        self._gaps: dict[int, float] = {}

    @property
    def subscribers(self) -> int:
        return self._count

    @asynccontextmanager
    async def subscribe(
        self,
        topics: Iterable[str],
        *,
        log_positions: Mapping[str, tuple[int, int]] | None = None,
    ) -> AsyncIterator[Subscription]:
        """Receive the events of `topics` from now on (once the reader has its starting point,
        so that a catch-up read done after this returns leaves no gap); `log_positions`: where
        the follower of a log topic is (byte, next line), for its new lines to be pushed."""
        subscription = Subscription(frozenset(topics), log_positions)
        for topic in subscription.topics:
            self._by_topic[topic].add(subscription)
        self._count += 1
        try:
            if self._reader is None or self._reader.done():
                self._ready = asyncio.Event()
                self._reader = asyncio.create_task(self._read_while_listened())
            follows_a_log = any(_job_of_log_topic(t) for t in subscription.topics)
            if follows_a_log and (self._log_watcher is None or self._log_watcher.done()):
                self._log_watcher = asyncio.create_task(self._watch_logs_while_followed())
            await self._ready.wait()
            yield subscription
        finally:
            self._count -= 1
            for topic in subscription.topics:
                listeners = self._by_topic.get(topic)
                if listeners is not None:
                    listeners.discard(subscription)
                    if not listeners:
                        del self._by_topic[topic]

    async def catch_up(
        self, subscription: Subscription, *, organization_id: uuid.UUID, after_id: int
    ) -> tuple[list[LiveMessage], set[int]]:
        """The subscription's events of one organization since `after_id` (what a page missed
        between its rendering and its stream), or RESYNC when there are too many; with the ids
        read, so that the same events arriving from the reader are not sent twice."""
        async with transaction(self._sessions, read_only=True) as session:
            rows = await events.newer(
                session,
                after_id=after_id,
                organization_id=organization_id,
                limit=CATCH_UP_LIMIT + 1,
            )
        seen = {row.id for row in rows}
        if len(rows) > CATCH_UP_LIMIT:
            return [RESYNC], seen
        wanted = subscription.topics
        return [LiveMessage.of(row) for row in rows if wanted.intersection(topics_of(row))], seen

    async def _read_while_listened(self) -> None:
        try:
            async with transaction(self._sessions, read_only=True) as session:
                self._last_id = await events.latest_id(session)
            self._gaps.clear()
        except Exception:  # without a starting point it would send the whole history
            log.warning("could not start reading the events outbox for live pages", exc_info=True)
            return
        finally:
            self._ready.set()
        while self._count > 0:
            ticket = self._notifier.ticket()
            try:
                while await self._read_once() == READ_BATCH:
                    pass
            except Exception:  # the database may be restarting: pages just hear later
                log.warning("could not read the events outbox for live pages", exc_info=True)
            if await self._notifier.wait(ticket, self._poll_seconds) and self._batch_seconds:
                await asyncio.sleep(self._batch_seconds)

    async def _read_once(self) -> int:
        async with transaction(self._sessions, read_only=True) as session:
            rows = await events.newer(
                session, after_id=self._last_id, also_ids=self._gaps.keys(), limit=READ_BATCH
            )
        now = time.monotonic()
        for row in rows:
            self._gaps.pop(row.id, None)
            if row.id > self._last_id:
                if row.id - self._last_id - 1 <= MAX_TRACKED_GAPS:
                    for skipped in range(self._last_id + 1, row.id):
                        self._gaps[skipped] = now
                self._last_id = row.id
            self._deliver(row)
        for gap, since in list(self._gaps.items()):
            if now - since > GAP_PATIENCE_SECONDS or len(self._gaps) > MAX_TRACKED_GAPS:
                del self._gaps[gap]
        return len(rows)

    def _deliver(self, event: Event) -> None:
        receivers: set[Subscription] = set()
        for topic in topics_of(event):
            receivers.update(self._by_topic.get(topic, ()))
        if receivers:
            message = LiveMessage.of(event)
            for subscription in receivers:
                subscription.offer(message)

    def _followed_logs(self) -> dict[uuid.UUID, str]:
        followed = {}
        for topic in self._by_topic:
            job_id = _job_of_log_topic(topic)
            if job_id is not None:
                followed[job_id] = topic
        return followed

    async def _watch_logs_while_followed(self) -> None:
        """Tell each follower of a log its size when it differs from what that follower was
        last told (so also once when it starts following: a page catches up with what
        arrived since it rendered); with the window from the follower's position when it
        has one (decision 0049)."""
        while followed := self._followed_logs():
            try:
                async with transaction(self._sessions, read_only=True) as session:
                    found = await logs.sizes(session, followed.keys())
            except Exception:  # the database may be restarting: followers hear later
                log.warning("could not read log sizes for live pages", exc_info=True)
            else:
                for job_id, topic in followed.items():
                    await self._tell_log_size(topic, job_id, found.get(job_id, 0))
            await asyncio.sleep(LOG_POLL_SECONDS)

    async def _tell_log_size(self, topic: str, job_id: uuid.UUID, size: int) -> None:
        """One message per position the followers of the log are at: the window from there
        rendered once, however many followers are at it."""
        told = {"job_id": str(job_id), "size": size}
        pushed: dict[tuple[int, int], tuple[LiveMessage, PushedWindow | None]] = {}
        for follower in list(self._by_topic.get(topic, ())):
            if follower.log_sizes_told.get(topic) == size:
                continue
            follower.log_sizes_told[topic] = size
            position = follower.log_positions.get(topic)
            if position is None or position[0] >= size or self._log_windows is None:
                follower.offer(LiveMessage(None, LOG_KIND, told))
                continue
            if position not in pushed:
                pushed[position] = await self._push_window(job_id, position, told)
            message, window = pushed[position]
            if window is None or window.more_after:
                # The follower fetches (and reopens its stream from where it then is).
                del follower.log_positions[topic]
            else:
                follower.log_positions[topic] = (window.end, window.next_line)
            follower.offer(message)

    async def _push_window(
        self, job_id: uuid.UUID, position: tuple[int, int], told: dict[str, Any]
    ) -> tuple[LiveMessage, PushedWindow | None]:
        start, line = position
        window = None
        if self._log_windows is not None and told["size"] - start <= PUSH_BYTES:
            try:
                window = await self._log_windows(job_id, start, line)
            except Exception:  # the follower fetches the window instead
                log.warning("could not render a log window for live pages", exc_info=True)
        if window is None:
            return LiveMessage(None, LOG_KIND, told), None
        data = {
            **told,
            "from": window.start,
            "to": window.end,
            "next_line": window.next_line,
            "html": window.html,
        }
        return LiveMessage(None, LOG_KIND, data), window

    async def aclose(self) -> None:
        for task in (self._reader, self._log_watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


#: A comment line now and then keeps proxies from closing a quiet stream and lets the server
#: notice a browser that went away.
HEARTBEAT_SECONDS = 15.0
#: Streams end after this long; the browser reconnects at once (with Last-Event-ID), which
#: re-checks its session: a signed-out or expired session stops receiving within this time.
STREAM_SECONDS = 300.0
RECONNECT_MILLISECONDS = 2000


async def event_stream(
    hub: LiveHub,
    *,
    organization_id: uuid.UUID,
    topics: Iterable[str],
    after_id: int | None,
    stream_seconds: float = STREAM_SECONDS,
    log_positions: Mapping[str, tuple[int, int]] | None = None,
) -> AsyncIterator[bytes]:
    """The body of a page's Server-Sent Events response: events since `after_id` (when given),
    then each new one of `topics`, until `stream_seconds` have passed."""
    deadline = time.monotonic() + stream_seconds
    async with hub.subscribe(topics, log_positions=log_positions) as subscription:
        already_sent: set[int] = set()
        missed: list[LiveMessage] = []
        if after_id is not None:
            missed, already_sent = await hub.catch_up(
                subscription, organization_id=organization_id, after_id=after_id
            )
        # Sent once listening: from here on nothing of these topics is missed.
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
        if missed:
            yield b"".join(message.encode() for message in missed)
        while (left := deadline - time.monotonic()) > 0:
            received = await subscription.next(min(HEARTBEAT_SECONDS, left))
            if received is None:
                yield b": keep-alive\n\n"
                continue
            # What arrived together (one read of the outbox) goes out as one write.
            chunk = b"".join(
                message.encode()
                for message in (received, *subscription.take_ready())
                if message.event_id is None or message.event_id not in already_sent
            )
            if chunk:
                yield chunk
