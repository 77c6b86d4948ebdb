"""Build JSON for every route that shows builds, with a per-process cache of rendered builds.

A build's JSON comes mostly from its own row, its jobs' rows and its meta-data. That part is
rendered once, encoded to bytes and cached, keyed by the build and by a *signature* read
from the database in the request that uses it: the build's `revision` and each of its jobs'
`(id, revision)`. Every UPDATE of a build or job row bumps its revision (`onupdate`), a
meta-data change bumps its build's, and a job added or removed changes the list of ids, so
an unchanged signature means unchanged rows, whichever replica changed them.

What comes from rows that change on their own — the pipeline (its slug is in every URL,
its live counts in the nested object), the base URL, the creator and unblocker users, each
job's agent, the builds a build points at — is left as holes in the cached bytes and filled
on every request from rows read in that request (`fills`). See
docs/decisions/0010-build-json-cache.md. Which builds a page shows, and their signatures, are
`listing`'s.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import listing, repository, shapes
from kiteline.server.builds.creation import LARGE_BUILD
from kiteline.server.builds.fills import Filler, hole_key
from kiteline.server.builds.repository import Build, BuildListing
from kiteline.server.jobs.service import Job, JobListing
from kiteline.server.kit import collector, sqlite_driver
from kiteline.server.kit.slices import pause_if_due
from kiteline.server.kit.urls import Urls
from kiteline.server.pipelines.service import Pipeline

# Holes are marked in the rendered dict with strings no data can hold (a random per-process
# nonce between NULs, which JSON encodes as `\u0000`); once encoded, the bytes are split there.
_NONCE = secrets.token_hex(16)
_API = f"\x00{_NONCE}:api\x00"  # the build's API URL up to its number: `…/builds/`
_WEB = f"\x00{_NONCE}:web\x00"  # the same on the web
_JOBS = f"\x00{_NONCE}:jobs\x00"  # where the jobs' array goes (each job encoded on its own)
_MARKS = re.compile(
    rb'"\\u0000%s:o(\d+)\\u0000"|\\u0000%s:(api|web)\\u0000' % (_NONCE.encode(), _NONCE.encode())
)


def _object_mark(slot: int) -> str:
    return f"\x00{_NONCE}:o{slot}\x00"


class Shape(NamedTuple):
    """Which parts of a build a route shows (its query options)."""

    include_jobs: bool = True
    include_pipeline: bool = True
    include_job_state_counts: bool = False
    include_retried_jobs: bool = False


@dataclass(frozen=True, slots=True)
class RenderedBuild:
    """A build's JSON as bytes with holes: `head`, then for each hole what fills it (its key)
    and the bytes after it."""

    signature: listing.Signature
    organization_id: uuid.UUID
    pipeline_id: uuid.UUID
    head: bytes
    tail: tuple[tuple[str, bytes], ...]
    #: The holes' keys, and the bytes it stands for in the cache (counted once, as it is split:
    #: a build of 20,000 jobs has 100,000 holes or more).
    keys: frozenset[str]
    size: int


@dataclass(eq=False)
class CachedPage:
    """A list's builds as rendered for one page signature (every build's key and signature,
    in order): its renderings, the holes they have, and the last answer joined from them with
    the fills it was joined with, reused while a request's fills are byte for byte those."""

    entries: list[RenderedBuild]
    keys: frozenset[str]
    filled: dict[str, bytes] | None = None
    body: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.body or b"") + 100 * len(self.entries)


@dataclass
class BuildJsonCache:
    """Rendered builds of one process, least recently used first out, bounded in count and
    in bytes. Entries are only ever reused when their signature is the one just read."""

    max_entries: int = 2_000
    max_bytes: int = 24 * 1024 * 1024
    #: Whole pages (see `CachedPage`), bounded on their own: their answers are larger than a
    #: build's rendering, and their renderings are shared with the builds' entries.
    max_pages: int = 64
    max_page_bytes: int = 16 * 1024 * 1024
    _entries: OrderedDict[tuple[Any, Shape], RenderedBuild] = field(default_factory=OrderedDict)
    _bytes: int = 0
    _pages: OrderedDict[tuple[Shape, tuple[listing.Listed, ...]], CachedPage] = field(
        default_factory=OrderedDict
    )
    _page_bytes: int = 0
    hits: int = 0
    misses: int = 0
    page_hits: int = 0
    answer_hits: int = 0

    def get(
        self, build_key: Any, shape: Shape, signature: listing.Signature
    ) -> RenderedBuild | None:
        key = (build_key, shape)
        entry = self._entries.get(key)
        if entry is None or entry.signature != signature:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, build_key: Any, shape: Shape, entry: RenderedBuild) -> None:
        key = (build_key, shape)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        if entry.size > self.max_bytes // 8:
            return  # a giant build would push out everything else
        self._entries[key] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def __len__(self) -> int:
        return len(self._entries)

    def page(self, shape: Shape, listed: tuple[listing.Listed, ...]) -> CachedPage | None:
        """The page rendered before for exactly these builds at exactly these signatures."""
        page = self._pages.get((shape, listed))
        if page is not None:
            self._pages.move_to_end((shape, listed))
            self.page_hits += 1
        return page

    def put_page(self, shape: Shape, listed: tuple[listing.Listed, ...], page: CachedPage) -> None:
        key = (shape, listed)
        old = self._pages.pop(key, None)
        if old is not None:
            self._page_bytes -= old.size
        self._pages[key] = page
        self._page_bytes += page.size
        while len(self._pages) > self.max_pages or self._page_bytes > self.max_page_bytes:
            _, evicted = self._pages.popitem(last=False)
            self._page_bytes -= evicted.size

    def keep_answer(self, page: CachedPage, filled: dict[str, bytes], body: bytes) -> None:
        """Remember `body`, the page joined with `filled`, if the page is still cached and
        the answer is small enough to be sent whole."""
        if len(body) >= min(STREAMED_BYTES, self.max_page_bytes // 8):
            return
        if not any(kept is page for kept in self._pages.values()):
            return  # pushed out meanwhile
        self._page_bytes -= page.size
        page.filled, page.body = filled, body
        self._page_bytes += page.size
        while self._page_bytes > self.max_page_bytes and self._pages:
            _, evicted = self._pages.popitem(last=False)
            self._page_bytes -= evicted.size


def cache_of(app: FastAPI) -> BuildJsonCache:
    """The app's cache (one per app, so that two apps in one process act as two replicas)."""
    cache: BuildJsonCache | None = getattr(app.state, "build_json_cache", None)
    if cache is None:
        cache = app.state.build_json_cache = BuildJsonCache()
    return cache


# Rendering ----------------------------------------------------------------------------------


#: Jobs rendered between two checks (each job takes some microseconds).
_JOBS_PER_CHECK = 50

_T = TypeVar("_T")

#: Rendering as a generator that yields at its checks: `_sliced` runs it on the loop with a
#: `pause_if_due()` at each, `_whole` runs it at once (in a thread). A pure function of the
#: rows either way.
Steps = Generator[None, None, _T]


async def _sliced(steps: Steps[_T]) -> _T:
    """Run `steps` on the loop, the loop free at its checks once due (`kit/slices`)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await pause_if_due()


def _whole(steps: Steps[_T]) -> _T:
    """Run `steps` to their end (in a thread: the loop gets the GIL back within
    `kit/offload.hand_over_quickly`'s switch interval)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _render(
    build: BuildListing,
    signature: listing.Signature,
    jobs: list[JobListing],
    meta_data: dict[str, str],
    shape: Shape,
) -> Steps[RenderedBuild]:
    """The build's JSON with holes, from its rows alone. A build of thousands of jobs is
    rendered in slices (a check every `_JOBS_PER_CHECK` jobs): each job is encoded on its own
    and the array spliced in, byte for byte what encoding the whole dict gives (its pieces
    are split at the holes one by one, never joined whole: 35 MB for 20,000 jobs)."""
    keys: list[str] = []

    def hole(kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None) -> Any:
        if row_id is None:
            return None
        keys.append(hole_key(kind, row_id, organization_id))
        return _object_mark(len(keys) - 1)

    url, web_url = f"{_API}{build.number}", f"{_WEB}{build.number}"
    body = shapes.build_body(build, url, web_url, meta_data, hole)
    shown = [job for job in jobs if shape.include_retried_jobs or not job.retried]
    encoded_jobs: list[bytes] = []
    if shape.include_jobs:
        body["jobs"] = _JOBS
        for index, job in enumerate(shown):
            encoded = to_json(shapes.job_body(build, url, web_url, job, hole))
            encoded_jobs.append(b"," + encoded if index else encoded)
            if index % _JOBS_PER_CHECK == 0:
                yield
    if shape.include_job_state_counts:
        body["job_state_counts"] = shapes.job_state_counts(shown)
    if shape.include_pipeline:
        body["pipeline"] = hole("pipeline", build.pipeline_id)
    encoded = to_json(body)
    pieces = [encoded]
    if shape.include_jobs:
        before, after = encoded.split(_JOBS_ENCODED)
        pieces = [before + b"[", *encoded_jobs, b"]" + after]
    return (yield from _split(pieces, keys, build, signature))


_JOBS_ENCODED = to_json(_JOBS)
#: Pieces (a job's JSON each) split between two checks.
_PIECES_PER_CHECK = 50


def _split(
    pieces: list[bytes], keys: list[str], build: BuildListing, signature: listing.Signature
) -> Steps[RenderedBuild]:
    """The rendering joined from `pieces` (no hole spans two), split at its holes."""
    urls = {
        b"api": hole_key("api", build.pipeline_id),
        b"web": hole_key("web", build.pipeline_id),
    }
    head = b""
    tail: list[tuple[str, bytes]] = []
    key: str | None = None
    slots_seen: set[int] = set()
    between: list[bytes] = []  # the bytes since the last hole, in pieces
    size = 0  # the tail's, as `RenderedBuild.size` counts it
    keys_shown: set[str] = set()
    for number, encoded in enumerate(pieces):
        if number % _PIECES_PER_CHECK == 0:
            yield
        start = 0
        for match in _MARKS.finditer(encoded):
            between.append(encoded[start : match.start()])
            piece = b"".join(between)
            between = []
            if key is None:
                head = piece
            else:
                tail.append((key, piece))
                size += len(piece) + 100
                keys_shown.add(key)
            slot, url = match.group(1), match.group(2)
            if slot is not None:
                # Each hole made is shown at most once (a build's JSON leaves some out: a
                # script job has no unblocker); no data can look like one (none holds the nonce).
                if int(slot) in slots_seen:
                    raise RuntimeError(f"build {build.id}: a hole in its rendering is marked twice")
                slots_seen.add(int(slot))
                key = keys[int(slot)]
            else:
                key = urls[url]
            start = match.end()
        between.append(encoded[start:] if start else encoded)
    if key is None:
        head = b"".join(between)
    else:
        tail.append((key, b"".join(between)))
        size += len(tail[-1][1]) + 100
        keys_shown.add(key)
    return RenderedBuild(
        signature,
        build.organization_id,
        build.pipeline_id,
        head,
        tuple(tail),
        frozenset(keys_shown),
        len(head) + size,
    )


#: Job rows read and made into listings between two `pause_if_due()` checks: on SQLite, whose
#: statements run on the loop's thread, fewer (each fetch holds the loop); on PostgreSQL each
#: slice is a fetch through a server-side cursor, and 100 cost a tenth more CPU (decision 0046).
_JOB_ROWS_PER_SLICE = {"sqlite": 100, "postgresql": 200}

#: Builds of this many jobs in all (their signatures tell) are read and rendered in a thread:
#: their job rows fetched whole in one call, made into listings and rendered there, the loop
#: free meanwhile (decision 0048). Fewer are streamed and rendered on the loop in slices: a
#: hand-off to a thread costs more than they do.
THREADED_JOB_ROWS = LARGE_BUILD

_BuildRows = dict[uuid.UUID, tuple[BuildListing, int, Any]]
_JobRows = dict[uuid.UUID, list[tuple[JobListing, int, Any]]]


async def _render_from_rows(
    session: AsyncSession, listed: Sequence[listing.Listed], shape: Shape
) -> dict[Any, RenderedBuild]:
    """Read the builds' rows (each with the revision it was read at) and render them. The
    meta-data is read after the build rows: a newer meta-data under an older revision is
    only ever shown to requests that read that revision before it changed."""
    if not listed:
        return {}
    build_ids = [uuid.UUID(str(item.key)) for item in listed]
    builds: _BuildRows = {}
    for row in await session.execute(listing.build_rows(build_ids)):
        builds[row[0]] = (BuildListing._make(row[:-2]), row[-2], row[-1])
    if not builds:
        return {}
    if sum(len(item.signature[1]) for item in listed) >= THREADED_JOB_ROWS:
        return await _render_in_thread(session, builds, shape)
    jobs: _JobRows = {build_id: [] for build_id in builds}
    # Once the rows turn out many, no full collection until they are rendered
    # (kit/collector.py).
    with collector.Hold() as hold:
        # Streamed, a slice of rows at a time, the loop free between slices.
        found = await session.stream(listing.job_rows(list(builds)))
        read = 0
        per_slice = _JOB_ROWS_PER_SLICE.get(session.get_bind().dialect.name, 200)
        async for rows in found.partitions(per_slice):
            _add_jobs(jobs, rows)
            read += len(rows)
            if read >= LARGE_BUILD:
                hold.engage()
            await pause_if_due()
        meta_data = await repository.meta_data_for(session, list(builds))
        return await _sliced(_render_all(builds, jobs, meta_data, shape))


async def _render_in_thread(
    session: AsyncSession, builds: _BuildRows, shape: Shape
) -> dict[Any, RenderedBuild]:
    """`_render_from_rows` for builds of many jobs: their rows are fetched in one call, and
    SQLAlchemy's processing of them (most of a read's CPU), the listings and the rendering
    run in one thread call, a pure function of the rows. On SQLite the statement itself runs
    and is fetched in a thread as well (`fetched_in_thread`: inline, 20,000 rows of 40
    columns are about 0.1 s of the loop in one call); on PostgreSQL its rows arrive while the
    loop is free, a slice at a time. One hand-off per read: per slice of rows, the hand-offs
    cost more CPU than the work they moved (decision 0046)."""
    with collector.Hold(engaged=True):
        # Core, not the ORM session: its results are processed as they are iterated (the
        # session buffers and processes them at once, on the loop).
        connection = await session.connection()
        query = listing.job_rows(list(builds))
        found: Iterable[Any]
        if connection.dialect.name == "sqlite":
            with sqlite_driver.fetched_in_thread():
                found = await connection.execute(query)
        else:
            # asyncpg decodes a result's JSON columns as it takes the result in, on the loop:
            # 20,000 rows' at once were a turn of 170 ms. A server-side cursor, a slice a time.
            found = []
            per_slice = _JOB_ROWS_PER_SLICE.get(connection.dialect.name, 200)
            async for rows in (await connection.stream(query)).partitions(per_slice):
                found.extend(rows)
                await pause_if_due()
        meta_data = await repository.meta_data_for(session, list(builds))
        return await asyncio.to_thread(_rendered_from, builds, found, meta_data, shape)


def _rendered_from(
    builds: _BuildRows,
    found: Iterable[Any],
    meta_data: dict[uuid.UUID, dict[str, str]],
    shape: Shape,
) -> dict[Any, RenderedBuild]:
    jobs: _JobRows = {build_id: [] for build_id in builds}
    _add_jobs(jobs, found)
    return _whole(_render_all(builds, jobs, meta_data, shape))


def _add_jobs(jobs: _JobRows, rows: Iterable[Any]) -> None:
    for row in rows:
        job = JobListing._make(row[:-2])
        jobs[job.build_id].append((job, row[-2], row[-1]))


def _render_all(
    builds: _BuildRows, jobs: _JobRows, meta_data: dict[uuid.UUID, dict[str, str]], shape: Shape
) -> Steps[dict[Any, RenderedBuild]]:
    rendered: dict[Any, RenderedBuild] = {}
    for build_id, (build, revision, key) in builds.items():
        signature: listing.Signature = (
            revision,
            tuple((id_, rev) for _, rev, id_ in jobs[build_id]),
        )
        rendered[key] = yield from _render(
            build, signature, [job for job, _, _ in jobs[build_id]], meta_data[build_id], shape
        )
    return rendered


async def render(
    session: AsyncSession,
    urls: Urls,
    listed: Sequence[listing.Listed],
    *,
    org_slugs: dict[uuid.UUID, str],
    shape: Shape,
    cache: BuildJsonCache | None,
    pipelines_known: Iterable[Pipeline] = (),
) -> RenderedPage:
    """The JSON of the `listed` builds, in their order (builds gone meanwhile are left out).

    With a `cache` (read-only transactions only: a write transaction's rows may yet be rolled
    back), builds whose signature (read in this request) matches a cached rendering reuse
    it; the others are rendered from their rows and cached under the revisions read with them.
    """
    filler = Filler(session, urls, org_slugs, {p.id: p for p in pipelines_known})
    signature = tuple(listed)
    page = cache.page(shape, signature) if cache is not None else None
    if page is not None:
        return RenderedPage(page.entries, await filler.fill(page.keys), cache, page)
    rendered: dict[Any, RenderedBuild] = {}
    if cache is not None:
        for key, build_signature in listed:
            entry = cache.get(key, shape, build_signature)
            if entry is not None:
                rendered[key] = entry
    fresh = await _render_from_rows(
        session, [item for item in listed if item.key not in rendered], shape
    )
    if cache is not None:
        for key, entry in fresh.items():
            cache.put(key, shape, entry)
    rendered.update(fresh)
    entries = [rendered[item.key] for item in listed if item.key in rendered]
    keys = frozenset().union(*(entry.keys for entry in entries))
    if cache is not None and len(entries) == len(listed):
        # Every build listed was found (on PostgreSQL one deleted since the page's
        # statement would not be): the page is these renderings whenever it is listed so.
        page = CachedPage(entries, keys)
        cache.put_page(shape, signature, page)
    return RenderedPage(entries, await filler.fill(keys), cache, page)


async def render_created(
    session: AsyncSession,
    urls: Urls,
    build: Build,
    jobs: Sequence[Job],
    meta_data: dict[str, str],
    *,
    org_slugs: dict[uuid.UUID, str],
    pipelines_known: Iterable[Pipeline] = (),
) -> RenderedPage:
    """The JSON of a build this transaction has just written (`build`, all of its `jobs` and
    its `meta_data`), rendered from those objects: what `render` without a cache answers,
    without reading the rows back. Not cached (the transaction may yet roll back)."""
    row = BuildListing._make(getattr(build, name) for name in BuildListing._fields)
    ordered = sorted(jobs, key=lambda job: (job.position, job.created_at, str(job.id)))
    listings = [
        JobListing._make(getattr(job, name) for name in JobListing._fields) for job in ordered
    ]
    entry = await _sliced(_render(row, (0, ()), listings, dict(meta_data), Shape()))
    filler = Filler(session, urls, org_slugs, {p.id: p for p in pipelines_known})
    keys = entry.keys
    return RenderedPage([entry], await filler.fill(keys))


@dataclass(frozen=True)
class RenderedPage:
    entries: list[RenderedBuild]
    filled: dict[str, bytes]
    cache: BuildJsonCache | None = None
    cached: CachedPage | None = None

    async def _parts(self, entry: RenderedBuild, parts: list[bytes]) -> None:
        if len(entry.tail) >= THREADED_HOLES:
            parts.extend(await asyncio.to_thread(_filled_in_pieces, entry, self.filled))
        else:
            await _sliced(_filled(entry, self.filled, parts))

    async def each_parts(self) -> list[list[bytes]]:
        """Each build's JSON, as the pieces it is joined from."""
        shown = []
        for entry in self.entries:
            parts: list[bytes] = []
            await self._parts(entry, parts)
            shown.append(parts)
        return shown

    async def each(self) -> list[bytes]:
        """Each build's JSON."""
        return [b"".join(parts) for parts in await self.each_parts()]

    async def list_parts(self) -> list[bytes]:
        """The builds' JSON as one array, as the pieces it is joined from: the answer joined
        before when the page and every fill are what they were then."""
        cached = self.cached
        if cached is not None and cached.body is not None and cached.filled == self.filled:
            if self.cache is not None:
                self.cache.answer_hits += 1
            return [cached.body]
        parts = [b"["]
        for index, entry in enumerate(self.entries):
            if index:
                parts.append(b",")
            await self._parts(entry, parts)
        parts.append(b"]")
        if cached is not None and self.cache is not None:
            if sum(len(part) for part in parts) >= STREAMED_BYTES:
                return parts  # not kept (`keep_answer`): not joined whole either
            body = b"".join(parts)
            self.cache.keep_answer(cached, self.filled, body)
            return [body]
        return parts

    async def as_list(self) -> bytes:
        """The builds' JSON as one array."""
        return b"".join(await self.list_parts())


#: Holes filled between two checks when a rendering is joined.
_HOLES_PER_CHECK = 2000
#: A rendering of this many holes or more (a build of 2,000 jobs or more) is filled and joined
#: in a thread, into pieces of about `STREAMED_BYTES`: on the loop, its hundreds of thousands
#: of parts were filled, counted and joined again in turns of 15-35 ms (decision 0048).
THREADED_HOLES = 10_000


def _filled(entry: RenderedBuild, filled: dict[str, bytes], parts: list[bytes]) -> Steps[None]:
    """Add `entry`'s parts to `parts`, its holes filled from `filled`."""
    parts.append(entry.head)
    for index, (key, piece) in enumerate(entry.tail):
        parts.append(filled[key])
        parts.append(piece)
        if index % _HOLES_PER_CHECK == 0:
            yield  # a build of 20,000 jobs has 100,000 holes or more


def _filled_in_pieces(entry: RenderedBuild, filled: dict[str, bytes]) -> list[bytes]:
    """`entry` filled and joined into pieces of about `STREAMED_BYTES` (in a thread)."""
    parts: list[bytes] = []
    _whole(_filled(entry, filled, parts))
    return list(_joined(parts))


#: Answers at least this large are sent in pieces of about this size, the loop free between
#: them: a build of 20,000 jobs is 35 MB, which joined and written at once held it for long.
STREAMED_BYTES = 1024 * 1024


def json_response(parts: list[bytes], *, status_code: int = 200) -> Response:
    """The JSON joined from `parts`: whole when small, else streamed with its Content-Length
    (the same bytes either way)."""
    size = sum(len(part) for part in parts)
    if size < STREAMED_BYTES:
        return Response(b"".join(parts), status_code=status_code, media_type="application/json")
    return StreamingResponse(
        _pieces(parts),
        status_code=status_code,
        media_type="application/json",
        headers={"content-length": str(size)},
    )


async def _pieces(parts: list[bytes]) -> AsyncIterator[bytes]:
    for piece in _joined(parts):
        yield piece


def _joined(parts: list[bytes]) -> Iterator[bytes]:
    """`parts` joined into pieces of about STREAMED_BYTES (each at least that, but the last)."""
    batch: list[bytes] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part)
        if size >= STREAMED_BYTES:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)
