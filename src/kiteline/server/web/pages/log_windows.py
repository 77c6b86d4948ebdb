"""The log window after a byte, read as the log window route reads it (`…/jobs/{id}/log?after=`)
and, for the live stream's followers, rendered as that route renders it: the stream pushes the
very HTML the viewer would fetch (decision 0049)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kiteline.server.blobs import BlobStore
from kiteline.server.jobs import service as jobs
from kiteline.server.kit.db import transaction
from kiteline.server.logs import service as logs
from kiteline.server.logs.compaction import read_range
from kiteline.server.logs.service import CompactedLog, LogLayout
from kiteline.server.web.live import LogWindowRenderer, PushedWindow
from kiteline.server.web.pages.log_view import (
    WINDOW_BYTES,
    LogWindow,
    forward_bounds,
    render_window,
)
from kiteline.server.web.templating import environment

WINDOW_TEMPLATE = "build/log_window.html"


async def forward_window(
    session: AsyncSession,
    store: BlobStore,
    layout: LogLayout | CompactedLog,
    *,
    after: int,
    line: int,
    complete: bool,
) -> LogWindow:
    """The window from byte `after` (line number `line`): whole lines, at most WINDOW_BYTES."""
    start = min(after, layout.size)
    data = await read_range(session, store, layout, start, start + WINDOW_BYTES)
    end = forward_bounds(data, start=start, size=layout.size, complete=complete)
    return render_window(
        data[: end - start], start=start, size=layout.size, first_line=line, complete=complete
    )


def log_window_renderer(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    rendered: Callable[[], None] = lambda: None,
) -> LogWindowRenderer:
    """What the live hub pushes to a log's followers: the window route's answer for
    `after=<byte>&line=<n>`, its HTML byte for byte (the template's context is the window and
    the job; nothing in it depends on who looks). `rendered` counts each rendering."""

    async def render(job_id: uuid.UUID, after: int, line: int) -> PushedWindow:
        async with transaction(sessions, read_only=True) as session:
            job = await jobs.get(session, job_id)
            complete = job.finished_at is not None
            layout = await logs.open_log(session, job.id, complete=complete)
            window = await forward_window(
                session, store, layout, after=after, line=line, complete=complete
            )
            html = environment.get_template(WINDOW_TEMPLATE).render(window=window, job=job)
        rendered()
        return PushedWindow(window.start, window.end, window.next_line, window.more_after, html)

    return render
