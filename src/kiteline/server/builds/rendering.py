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
on every request from rows read in that request. See docs/decisions/0010-build-json-cache.md.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json
from sqlalchemy import Select, String, bindparam, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents import service as agents
from kiteline.server.agents.shapes import agent_json
from kiteline.server.builds import repository, shapes
from kiteline.server.builds.creation import LARGE_BUILD
from kiteline.server.builds.models import Build
from kiteline.server.builds.repository import BuildFilter, BuildListing, apply_filter
from kiteline.server.jobs import service as jobs_service
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.service import JobListing
from kiteline.server.kit import collector
from kiteline.server.kit.slices import pause_if_due
from kiteline.server.kit.urls import Urls
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.pipelines.shapes import pipeline_json
from kiteline.server.users import service as users
from kiteline.server.users.shapes import user_json

#: A build row's revision and its jobs' (id, revision), in the order the JSON lists them.
Signature = tuple[int, tuple[tuple[Any, int], ...]]

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


# A hole's key names what fills it: `kind:id` (`agent:id:organization_id` for an agent, whose
# URLs are under the build's organization). A string: hashing one is cheap, a UUID's is not.
def hole_key(kind: str, row_id: uuid.UUID, organization_id: uuid.UUID | None = None) -> str:
    return f"{kind}:{row_id}:{organization_id}" if organization_id else f"{kind}:{row_id}"


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

    signature: Signature
    organization_id: uuid.UUID
    pipeline_id: uuid.UUID
    head: bytes
    tail: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        return len(self.head) + sum(len(piece) + 100 for _, piece in self.tail)


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
    _pages: OrderedDict[tuple[Shape, tuple[Listed, ...]], CachedPage] = field(
        default_factory=OrderedDict
    )
    _page_bytes: int = 0
    hits: int = 0
    misses: int = 0
    page_hits: int = 0
    answer_hits: int = 0

    def get(self, build_key: Any, shape: Shape, signature: Signature) -> RenderedBuild | None:
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

    def page(self, shape: Shape, listed: tuple[Listed, ...]) -> CachedPage | None:
        """The page rendered before for exactly these builds at exactly these signatures."""
        page = self._pages.get((shape, listed))
        if page is not None:
            self._pages.move_to_end((shape, listed))
            self.page_hits += 1
        return page

    def put_page(self, shape: Shape, listed: tuple[Listed, ...], page: CachedPage) -> None:
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


# Queries ------------------------------------------------------------------------------------

# Rows are keyed by ids as the driver returns them (`type_coerce` to String: no UUID object
# made per row, a page reads a hundred or more): a build's in the cache, a job's in signatures.
_BUILD_KEY = type_coerce(Build.id, String).label("key")
_JOB_KEY = type_coerce(Job.id, String).label("job_key")
_JOB_ORDER = (Job.position, Job.created_at, Job.id)
# Built once: constructing selects of twenty-odd columns is a visible cost per request.
_BUILD_ROWS = select(
    *(getattr(Build, name) for name in BuildListing._fields), Build.revision, _BUILD_KEY
)
_JOB_ROWS = select(
    *(getattr(Job, name) for name in JobListing._fields), Job.revision, _JOB_KEY
).order_by(*_JOB_ORDER)
_PAGE_COLUMNS: list[Any] = [Build.id, Build.revision, Build.created_at, Build.number]
_PAGE: Select[Any] = select(*_PAGE_COLUMNS)


class Listed(NamedTuple):
    """A build to show: its id as read (the cache's key) and its signature."""

    key: Any
    signature: Signature


def _listed_query(builds: Any, *order: Any) -> Select[Any]:
    """Keys and signatures of the builds `builds` (a subquery of builds' id, revision,
    created_at and number) selects, in one statement: the builds joined to their jobs."""
    return (
        select(type_coerce(builds.c.id, String), builds.c.revision, _JOB_KEY, Job.revision)
        .select_from(builds.outerjoin(Job, Job.build_id == builds.c.id))
        .order_by(*order, *_JOB_ORDER)
    )


async def _listed(
    session: AsyncSession, query: Select[Any], parameters: dict[str, Any] | None = None
) -> list[Listed]:
    revisions: dict[Any, int] = {}
    jobs: dict[Any, list[tuple[Any, int]]] = {}
    for key, revision, job_key, job_revision in await session.execute(query, parameters):
        if key not in revisions:
            revisions[key] = revision
            jobs[key] = []
        if job_key is not None:
            jobs[key].append((job_key, job_revision))
    return [Listed(key, (revision, tuple(jobs[key]))) for key, revision in revisions.items()]


def _page_query(*, pipeline_scoped: bool, where: BuildFilter) -> Select[Any]:
    """The page's builds newest first (offset, limit and ids as parameters), as `_listed`
    reads them."""
    query = _PAGE.where(Build.organization_id.in_(bindparam("organization_ids", expanding=True)))
    if pipeline_scoped:
        query = query.where(Build.pipeline_id == bindparam("pipeline_id"))
    page = (
        apply_filter(query, where)
        .order_by(Build.created_at.desc(), Build.number.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery()
    )
    return _listed_query(page, page.c.created_at.desc(), page.c.number.desc())


# Built once: most lists have no filter, and building the statement is a visible cost.
_UNFILTERED_PAGES = {
    scoped: _page_query(pipeline_scoped=scoped, where=BuildFilter()) for scoped in (False, True)
}


async def list_page(
    session: AsyncSession,
    *,
    organization_ids: Sequence[uuid.UUID],
    pipeline_id: uuid.UUID | None,
    where: BuildFilter,
    offset: int,
    limit: int,
) -> tuple[list[Listed], bool]:
    """One page of builds, newest first, as keys and signatures (and whether another page
    follows), in one statement whatever the page's builds look like."""
    scoped = pipeline_id is not None
    query = (
        _UNFILTERED_PAGES[scoped]
        if not any(getattr(where, name.name) for name in dataclasses.fields(where))
        else _page_query(pipeline_scoped=scoped, where=where)
    )
    parameters: dict[str, Any] = {
        "organization_ids": list(organization_ids),
        "offset": offset,
        "limit": limit + 1,
    }
    if scoped:
        parameters["pipeline_id"] = pipeline_id
    listed = await _listed(session, query, parameters)
    return listed[:limit], len(listed) > limit


async def listed_by_id(session: AsyncSession, build_ids: Sequence[uuid.UUID]) -> list[Listed]:
    """`list_page` for given builds, in their order (builds that don't exist left out)."""
    builds = _PAGE.where(Build.id.in_(build_ids)).subquery()
    listed = {
        uuid.UUID(str(item.key)): item
        for item in await _listed(session, _listed_query(builds, builds.c.id))
    }
    return [listed[build_id] for build_id in build_ids if build_id in listed]


# Rendering ----------------------------------------------------------------------------------


#: Jobs rendered between two `pause_if_due()` checks (each job takes some microseconds).
_JOBS_PER_CHECK = 50


async def _render(
    build: BuildListing,
    signature: Signature,
    jobs: list[JobListing],
    meta_data: dict[str, str],
    shape: Shape,
) -> RenderedBuild:
    """The build's JSON with holes, from its rows alone. A build of thousands of jobs is
    rendered in slices, the loop free between them (`kit/slices`): each job is encoded on its
    own and the array spliced in, byte for byte what encoding the whole dict gives."""
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
            encoded_jobs.append(to_json(shapes.job_body(build, url, web_url, job, hole)))
            if index % _JOBS_PER_CHECK == 0:
                await pause_if_due()
    if shape.include_job_state_counts:
        body["job_state_counts"] = shapes.job_state_counts(shown)
    if shape.include_pipeline:
        body["pipeline"] = hole("pipeline", build.pipeline_id)
    encoded = to_json(body)
    if shape.include_jobs:
        before, after = encoded.split(_JOBS_ENCODED)
        encoded = b"".join((before, b"[", b",".join(encoded_jobs), b"]", after))
    return await _split(encoded, keys, build, signature)


_JOBS_ENCODED = to_json(_JOBS)
#: Holes found between two `pause_if_due()` checks when splitting a rendering.
_MARKS_PER_CHECK = 500


async def _split(
    encoded: bytes, keys: list[str], build: BuildListing, signature: Signature
) -> RenderedBuild:
    urls = {
        b"api": hole_key("api", build.pipeline_id),
        b"web": hole_key("web", build.pipeline_id),
    }
    head = b""
    tail: list[tuple[str, bytes]] = []
    key: str | None = None
    slots_seen: set[int] = set()
    start = 0
    for index, match in enumerate(_MARKS.finditer(encoded)):
        if index % _MARKS_PER_CHECK == 0:
            await pause_if_due()
        piece = encoded[start : match.start()]
        if key is None:
            head = piece
        else:
            tail.append((key, piece))
        slot, url = match.group(1), match.group(2)
        if slot is not None:
            # Each hole made is shown at most once (a build's JSON leaves some out: a script
            # job has no unblocker); no data can look like one (none holds the nonce).
            if int(slot) in slots_seen:
                raise RuntimeError(f"build {build.id}: a hole in its rendering is marked twice")
            slots_seen.add(int(slot))
            key = keys[int(slot)]
        else:
            key = urls[url]
        start = match.end()
    if key is None:
        head = encoded
    else:
        tail.append((key, encoded[start:]))
    return RenderedBuild(signature, build.organization_id, build.pipeline_id, head, tuple(tail))


#: Job rows read and made into listings between two `pause_if_due()` checks.
_JOB_ROWS_PER_SLICE = 500


async def _render_from_rows(
    session: AsyncSession, keys: Sequence[Any], shape: Shape
) -> dict[Any, RenderedBuild]:
    """Read the builds' rows (each with the revision it was read at) and render them. The
    meta-data is read after the build rows: a newer meta-data under an older revision is
    only ever shown to requests that read that revision before it changed."""
    if not keys:
        return {}
    build_ids = [uuid.UUID(str(key)) for key in keys]
    builds: dict[uuid.UUID, tuple[BuildListing, int, Any]] = {}
    for row in await session.execute(_BUILD_ROWS.where(Build.id.in_(build_ids))):
        builds[row[0]] = (BuildListing._make(row[:-2]), row[-2], row[-1])
    jobs: dict[uuid.UUID, list[tuple[JobListing, int, Any]]] = {build_id: [] for build_id in builds}
    # Once the rows turn out many (a large build's), no full collection until they are
    # rendered (kit/collector.py).
    with collector.Hold() as hold:
        if builds:
            # Streamed, a slice of rows at a time: a build of 20,000 jobs is seconds of row
            # processing, which would otherwise hold the loop in one piece.
            found = await session.stream(_JOB_ROWS.where(Job.build_id.in_(list(builds))))
            read = 0
            async for rows in found.partitions(_JOB_ROWS_PER_SLICE):
                for row in rows:
                    job = JobListing._make(row[:-2])
                    jobs[job.build_id].append((job, row[-2], row[-1]))
                read += len(rows)
                if read >= LARGE_BUILD:
                    hold.engage()
                await pause_if_due()
        meta_data = await repository.meta_data_for(session, list(builds))
        rendered: dict[Any, RenderedBuild] = {}
        for build_id, (build, revision, key) in builds.items():
            signature: Signature = (revision, tuple((id_, rev) for _, rev, id_ in jobs[build_id]))
            rendered[key] = await _render(
                build, signature, [job for job, _, _ in jobs[build_id]], meta_data[build_id], shape
            )
    return rendered


async def render(
    session: AsyncSession,
    urls: Urls,
    listed: Sequence[Listed],
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
        session, [item.key for item in listed if item.key not in rendered], shape
    )
    if cache is not None:
        for key, entry in fresh.items():
            cache.put(key, shape, entry)
    rendered.update(fresh)
    entries = [rendered[item.key] for item in listed if item.key in rendered]
    keys = frozenset(key for entry in entries for key, _ in entry.tail)
    if cache is not None and len(entries) == len(listed):
        # Every build listed was found (on PostgreSQL one deleted since the page's
        # statement would not be): the page is these renderings whenever it is listed so.
        page = CachedPage(entries, keys)
        cache.put_page(shape, signature, page)
    return RenderedPage(entries, await filler.fill(keys), cache, page)


@dataclass(frozen=True)
class RenderedPage:
    entries: list[RenderedBuild]
    filled: dict[str, bytes]
    cache: BuildJsonCache | None = None
    cached: CachedPage | None = None

    def _parts(self, entry: RenderedBuild, parts: list[bytes]) -> None:
        filled = self.filled
        parts.append(entry.head)
        for key, piece in entry.tail:
            parts.append(filled[key])
            parts.append(piece)

    def each_parts(self) -> list[list[bytes]]:
        """Each build's JSON, as the pieces it is joined from."""
        shown = []
        for entry in self.entries:
            parts: list[bytes] = []
            self._parts(entry, parts)
            shown.append(parts)
        return shown

    def each(self) -> list[bytes]:
        """Each build's JSON."""
        return [b"".join(parts) for parts in self.each_parts()]

    def list_parts(self) -> list[bytes]:
        """The builds' JSON as one array, as the pieces it is joined from: the answer joined
        before when the page and every fill are what they were then."""
        cached = self.cached
        if cached is not None and cached.body is not None and cached.filled == self.filled:
            if self.cache is not None:
                self.cache.answer_hits += 1
            return [cached.body]
        parts = self._list_parts()
        if cached is not None and self.cache is not None:
            body = b"".join(parts)
            self.cache.keep_answer(cached, self.filled, body)
            return [body]
        return parts

    def _list_parts(self) -> list[bytes]:
        parts = [b"["]
        for index, entry in enumerate(self.entries):
            if index:
                parts.append(b",")
            self._parts(entry, parts)
        parts.append(b"]")
        return parts

    def as_list(self) -> bytes:
        """The builds' JSON as one array."""
        return b"".join(self.list_parts())


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


# Holes --------------------------------------------------------------------------------------


def _string_content(text: str) -> bytes:
    """`text` as it appears between the quotes of a JSON string."""
    return to_json(text)[1:-1]


class Filler:
    """What fills the holes of one response's builds, each read and encoded once."""

    def __init__(
        self,
        session: AsyncSession,
        urls: Urls,
        org_slugs: dict[uuid.UUID, str],
        pipelines_known: dict[uuid.UUID, Pipeline],
    ) -> None:
        self.session = session
        self.urls = urls
        self.org_slugs = org_slugs
        self.pipelines = pipelines_known

    async def fill(self, keys: frozenset[str]) -> dict[str, bytes]:
        """The bytes of every hole in `keys`, from rows read now."""
        await self.load(keys)
        return {key: self.encoded(key) for key in keys}

    async def load(self, keys: Iterable[str]) -> None:
        """Read the rows that fill the holes `keys`, each once."""
        wanted: dict[str, set[uuid.UUID]] = {}
        for key in keys:
            kind, _, rest = key.partition(":")
            wanted.setdefault(kind, set()).add(uuid.UUID(rest[:36]))
        session = self.session
        self.parent_jobs = await jobs_service.get_many(session, wanted.get("triggered_from", set()))
        self.related = await repository.get_many(
            session,
            wanted.get("rebuilt_from", set())
            | wanted.get("triggered_build", set())
            | {job.build_id for job in self.parent_jobs.values()},
        )
        needed = (
            wanted.get("api", set())
            | wanted.get("pipeline", set())
            | {build.pipeline_id for build in self.related.values()}
        ) - set(self.pipelines)
        self.pipelines.update(await pipelines.get_many(session, needed))
        shown = [self.pipelines[pipeline_id] for pipeline_id in wanted.get("pipeline", ())]
        # The builds' users and the shown pipelines' creators in one statement.
        self.users = await users.get_many(
            session,
            wanted.get("user", set()) | {p.created_by_id for p in shown if p.created_by_id},
        )
        self.agents = await agents.get_many(session, wanted.get("agent", set()))
        self.pipelines_shown: dict[str, dict[str, Any]] = {}
        if shown:
            counts = await repository.counts_for_pipelines(session, [p.id for p in shown])
            for pipeline in shown:
                self.pipelines_shown[hole_key("pipeline", pipeline.id)] = pipeline_json(
                    self.urls,
                    self.org_slugs[pipeline.organization_id],
                    pipeline,
                    creator=self.users.get(pipeline.created_by_id)
                    if pipeline.created_by_id
                    else None,
                    counts=counts.get(pipeline.id, repository.PipelineCounts()),
                )

    def builds_url(self, pipeline_id: uuid.UUID, *, web: bool = False) -> str:
        """What a build's URL puts before its number (its pipeline read by `load`)."""
        pipeline = self.pipelines[pipeline_id]
        org_slug = self.org_slugs.get(pipeline.organization_id, "")
        if web:
            return self.urls.builds_web(org_slug, pipeline.slug)
        return self.urls.builds(org_slug, pipeline.slug)

    def _reference(self, build_id: uuid.UUID | None) -> shapes.Reference | None:
        other = self.related.get(build_id) if build_id else None
        if other is None:
            return None
        return shapes.Reference(
            other.id,
            other.number,
            f"{self.builds_url(other.pipeline_id)}{other.number}",
            f"{self.builds_url(other.pipeline_id, web=True)}{other.number}",
            self.pipelines[other.pipeline_id].slug,
        )

    def hole(
        self, kind: str, row_id: uuid.UUID | None, organization_id: uuid.UUID | None = None
    ) -> Any:
        """What fills a hole, as an object (a `shapes.Hole`, once `load` read its row)."""
        return None if row_id is None else self.value(hole_key(kind, row_id, organization_id))

    def value(self, key: str) -> Any:
        kind, _, ids = key.partition(":")
        row_id = uuid.UUID(ids[:36])
        if kind == "pipeline":
            return self.pipelines_shown[key]
        if kind == "user":
            return user_json(self.users.get(row_id))
        if kind == "agent":
            agent = self.agents.get(row_id)
            if agent is None:
                return None
            return agent_json(self.urls, self.org_slugs[uuid.UUID(ids[37:])], agent)
        if kind == "rebuilt_from":
            return shapes.rebuilt_from_json(self._reference(row_id))
        if kind == "triggered_from":
            parent_job = self.parent_jobs.get(row_id)
            return shapes.triggered_from_json(
                self._reference(parent_job.build_id) if parent_job else None
            )
        if kind == "triggered_build":
            return shapes.triggered_build_json(self._reference(row_id))
        raise ValueError(f"unknown hole {key!r}")

    def encoded(self, key: str) -> bytes:
        kind, _, ids = key.partition(":")
        if kind == "api":
            return _string_content(self.builds_url(uuid.UUID(ids)))
        if kind == "web":
            return _string_content(self.builds_url(uuid.UUID(ids), web=True))
        return to_json(self.value(key))
