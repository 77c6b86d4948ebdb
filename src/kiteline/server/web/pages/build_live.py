"""The build page's live block (templates/build/live.html: header, annotations, jobs,
waterfall, artifacts, environment and meta-data, dialogs), rendered once per *signature* of
what it shows and shared by every viewer and every refresh until that changes.

Every browser watching a build fetches the block after each burst of the build's events, and
a page open renders it too: reading all it shows (agents, users, annotations, artifacts,
meta-data, linked builds) and rendering it cost about 10 ms of CPU each, which 50 watchers
made a third of the agent API's throughput (docs/performance.md, "Web UI",
`bench/web_watchers.py`). The key (`block_key`, below) is worked out from rows the page
reads anyway, as decision 0010 keys build JSON:

- the build's `revision` (bumped by every change of its row and by its meta-data) and its
  jobs' `(id, revision)` (a job's agent, unblocker and triggered build are columns of it);
- what the block shows of the pipeline (name, slug, repository, whether rebuilds are
  allowed) and the organization's slug;
- the builds it links to (triggered, parent, rebuilt from) with their states;
- its annotations (id, context, style and a digest of the body) and artifacts (the columns
  shown), read whole on each request: cheaper than a column of their own to bump;
- nothing of the time it is rendered at: while anything it shows runs on the clock
  (durations, the waterfall's axis) it is rendered as of its rows' last moment (`as_of`)
  and the browser ticks the durations on from their timestamps.

Agents' and users' names never change, so their ids (in the job and build rows) stand for
them. Only read-only transactions fill the cache (a write's rows may be rolled back), and
never with a submitted "Unblock" dialog (a 422 shows what one viewer typed). Nothing is
invalidated: each request compares what it read with what a rendering was made from, so
replicas need no messages. The CSRF token, the block's only per-session part, is a
placeholder in the cached HTML, put in per response.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.annotations.service import ShownAnnotation
from kiteline.server.artifacts.service import ShownArtifact
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds.repository import Build
from kiteline.server.jobs.service import JobSummary
from kiteline.server.kit.db import Named, NamesById
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.users import service as users
from kiteline.server.web.pages.build_rows import RowCache
from kiteline.server.web.pages.build_view import BuildLink

#: Put where the viewer's CSRF token goes in a cached block; random per process, so that no
#: text a user wrote can hold it.
CSRF_PLACEHOLDER = "csrf-" + secrets.token_hex(16)

#: Rendered blocks, least recently used out first, bounded in bytes.
BLOCKS = RowCache(max_bytes=32 * 1024 * 1024)


class KnownNames:
    """Agents' or users' names by id, read once per process: no code path changes a name
    (decision 0039), so a rendering reads only those it has not seen (none, once the agents
    have run a job each) instead of a query per rendering."""

    def __init__(self, names: NamesById, limit: int = 10_000) -> None:
        self._read = names
        self._limit = limit
        self._known: dict[uuid.UUID, Named] = {}

    async def get(self, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Named]:
        missing = ids - self._known.keys()
        if missing:
            if len(self._known) + len(missing) > self._limit:
                self._known.clear()
            self._known.update(await self._read(session, missing))
        return {row_id: self._known[row_id] for row_id in ids if row_id in self._known}


AGENT_NAMES = KnownNames(agents.names)
USER_NAMES = KnownNames(users.names)


class MetaDataByRevision:
    """A build's meta-data by (build id, revision): setting meta-data bumps the build's
    revision (builds/meta_data.py), so a rendering of the block after a job's change reads
    none. Filled from read-only transactions only, as BLOCKS."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._kept: OrderedDict[tuple[uuid.UUID, int], dict[str, str]] = OrderedDict()

    async def get(self, session: AsyncSession, build: Build) -> dict[str, str]:
        key = (build.id, build.revision)
        found = self._kept.get(key)
        if found is None:
            found = (await build_repository.meta_data_for(session, [build.id]))[build.id]
            self._kept[key] = found
            if len(self._kept) > self._limit:
                self._kept.popitem(last=False)
        else:
            self._kept.move_to_end(key)
        return found


META_DATA = MetaDataByRevision()


@dataclass(frozen=True)
class Links:
    """The other builds the block links to, read on every request (their states move on their
    own)."""

    triggered: Mapping[uuid.UUID, BuildLink]  # by trigger job id
    parent: BuildLink | None
    rebuilt_from: BuildLink | None

    def key(self) -> tuple[Any, ...]:
        return (tuple(self.triggered.items()), self.parent, self.rebuilt_from)


def with_csrf(html: str, csrf_token: str) -> Markup:
    return Markup(html.replace(CSRF_PLACEHOLDER, csrf_token))


def as_of(build: Build, jobs: Sequence[JobSummary]) -> datetime:
    """The moment a block on the clock is rendered at: the last one its rows record (a change
    of any of them bumps a revision in the key). What runs then shows its duration up to that
    moment in the HTML, and build.js ticks it on from its timestamps (`data-elapsed-from`,
    the waterfall's `data-start`): so the block of a running build is one rendering per
    change, not per second, and a block that changed nothing but the time is not sent."""
    moments = [build.created_at, build.started_at, build.finished_at]
    for job in jobs:
        moments += (job.created_at, job.runnable_at, job.started_at, job.finished_at)
    return max(moment for moment in moments if moment is not None)


def on_the_clock(build: Build, jobs: Sequence[JobSummary]) -> bool:
    """Whether the block shows anything computed from the time it is rendered at: the build's
    duration and waterfall while it runs, a job's wait before it starts and its run before it
    finishes (build_view's `duration`, `waited`, `ran` and `waterfall`); a job that ended without
    starting (canceled, expired) waited until it ended."""
    if build.finished_at is None:
        return True
    return any(
        (job.runnable_at is not None and job.started_at is None and job.finished_at is None)
        or (job.started_at is not None and job.finished_at is None)
        for job in jobs
    )


def _body_digest(body: str) -> bytes:
    return hashlib.blake2b(body.encode(), digest_size=16).digest()


def block_key(
    *,
    organization_slug: str,
    pipeline: Pipeline,
    build: Build,
    jobs: Sequence[JobSummary],
    links: tuple[Any, ...],
    annotations: Sequence[ShownAnnotation],
    artifacts: Sequence[ShownArtifact],
) -> tuple[Any, ...]:
    """Everything the build page's live block is made of, as read in one request (rows with
    equal keys render alike: see build_live.py); `links` is `Links.key()`."""
    return (
        build.id,
        build.revision,
        tuple((job.id, job.revision) for job in jobs),
        organization_slug,
        pipeline.slug,
        pipeline.name,
        pipeline.repository,
        pipeline.settings.get("allow_rebuilds") is not False,
        links,
        tuple((a.id, a.context, a.style, _body_digest(a.body)) for a in annotations),
        tuple((a.id, a.job_id, a.path, a.state, a.file_size) for a in artifacts),
    )
