"""A finished job's log compacted into the blob store: every endpoint that reads a log (REST
JSON/text/HTML and byte ranges, build- and organization-scoped, the SDK and CLI reads, the web
viewer's windows and raw download, the live tail's size) answers with exactly the same bytes
before and after; the sweep compacts on its own; a log deleted meanwhile stays deleted."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kiteline.client import Client
from kiteline.server.blobs import FilesystemBlobStore
from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.logs import compaction
from kiteline.server.logs.models import JobLog, LogChunk
from tests.server.test_web_live import stream
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import LiveServer
from tests.support.processes import wait_until
from tests.support.run_async import run_async
from tests.support.web import give_password, signed_in

MIB = 1024 * 1024
BUILD = "/v2/organizations/acme/pipelines/p/builds/1"


def a_long_log() -> bytes:
    """2.5 MiB of lines with colours, sections, timestamps and multi-byte characters, some
    of them across the 1 MiB block boundaries."""
    lines = []
    number = 0
    while sum(len(line) for line in lines) < 5 * MIB // 2:
        number += 1
        if number % 500 == 0:
            lines.append(f"--- :test: Section {number}\n".encode())
        stamp = f"\x1b_bk;t={1_700_000_000_000 + number}\x07"
        lines.append(
            f"{stamp}\x1b[32mline {number}\x1b[0m é ü 漢字 <&> {'x' * (number % 90)}\n".encode()
        )
    return b"".join(lines)


LOG = a_long_log()


def as_chunks(log: bytes) -> list[tuple[int, int, bytes]]:
    """Cut unevenly (one cut inside a multi-byte character), sent out of order."""
    cuts = [0, 700_001, MIB - 3, 1_900_000, len(log)]
    chunks = [(n, cuts[n], log[cuts[n] : cuts[n + 1]]) for n in range(len(cuts) - 1)]
    return [chunks[2], chunks[0], chunks[3], chunks[1]]


class Finished:
    def __init__(self, server: LiveServer, log: bytes) -> None:
        self.server = server
        identity = server.identity("acme")
        give_password(server, identity)
        self.identity = identity
        self.api = server.client(identity.api_token)
        pipeline = {"name": "P", "configuration": "steps:\n  - command: make\n"}
        self.api.post("/v2/organizations/acme/pipelines", json=pipeline).raise_for_status()
        build = {"commit": "HEAD", "branch": "main"}
        self.api.post("/v2/organizations/acme/pipelines/p/builds", json=build).raise_for_status()
        agent = ScriptedAgent.register(server.url, identity.agent_token)
        self.job = agent.take_job()
        for sequence, offset, data in as_chunks(log):
            assert agent.log(self.job, sequence, offset, data).status_code == 201
        assert agent.finish(self.job, "0").status_code == 200
        self.id = self.job["id"]
        self.web = signed_in(server, identity.email)

    def close(self) -> None:
        self.web.close()
        self.api.close()


@pytest.fixture
def finished(make_server: Callable[..., LiveServer]) -> Iterator[Finished]:
    # The server's own sweep stays off: the test compacts when it means to.
    job = Finished(make_server(log_compaction=False), LOG)
    yield job
    job.close()


def compact(server: LiveServer, job_id: str) -> bool:
    async def go() -> bool:
        engine = create_engine(server.settings.resolved_database_url)
        try:
            store = FilesystemBlobStore(server.settings.resolved_blob_dir)
            return await compaction.compact_log(
                create_sessionmaker(engine), store, uuid.UUID(job_id)
            )
        finally:
            await engine.dispose()

    return run_async(go)


def stored(server: LiveServer, job_id: str) -> tuple[int, str | None]:
    """(chunks left in the database, the job_logs row's state)."""

    async def go() -> tuple[int, str | None]:
        engine = create_engine(server.settings.resolved_database_url)
        try:
            async with transaction(create_sessionmaker(engine), read_only=True) as session:
                found = await session.scalars(
                    select(LogChunk.id).where(LogChunk.job_id == uuid.UUID(job_id))
                )
                chunks = len(list(found))
                row = await session.get(JobLog, uuid.UUID(job_id))
                return chunks, row.state if row is not None else None
        finally:
            await engine.dispose()

    return run_async(go)


RANGES = [
    "bytes=5-13",
    "bytes=0-0",
    f"bytes={MIB - 10}-{MIB + 10}",  # across a block boundary
    f"bytes={MIB}-{2 * MIB - 1}",  # exactly one block
    f"bytes={2 * MIB + 5}-",
    "bytes=-8",
    f"bytes=-{len(LOG) + 5}",
    f"bytes=12-{len(LOG) + 1000}",
    f"bytes={len(LOG)}-",  # unsatisfiable
    "bytes=9-3",  # ignored
]


def every_read(job: Finished) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Every way to read the log, by name: (status, the headers that describe the body, body)."""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def keep(name: str, response: Any) -> None:
        headers = {
            key: response.headers[key]
            for key in ("content-type", "content-length", "content-range", "accept-ranges")
            if key in response.headers
        }
        answers[name] = (response.status_code, headers, response.content)

    for scope in (f"{BUILD}/jobs/{job.id}", f"/v2/organizations/acme/jobs/{job.id}"):
        keep(f"{scope} json", job.api.get(f"{scope}/log"))
        keep(f"{scope} .json", job.api.get(f"{scope}/log.json"))
        keep(f"{scope} txt", job.api.get(f"{scope}/log.txt"))
        keep(f"{scope} html", job.api.get(f"{scope}/log.html"))
        keep(f"{scope} accept text", job.api.get(f"{scope}/log", headers={"Accept": "text/plain"}))
        keep(f"{scope} accept html", job.api.get(f"{scope}/log", headers={"Accept": "text/html"}))
        for wanted in RANGES:
            keep(f"{scope} {wanted}", job.api.get(f"{scope}/log.txt", headers={"Range": wanted}))

    with Client(job.server.url, job.identity.api_token, org="acme") as client:
        text = client.job_log("p", 1, job.id)
        streamed = "".join(client.stream_log("p", 1, job.id))
    answers["sdk job_log"] = (200, {}, text.encode())
    answers["sdk stream_log"] = (200, {}, streamed.encode())

    page = f"/acme/p/builds/1/jobs/{job.id}"
    viewer = job.web.get(f"{page}/log", headers={"HX-Request": "true"})
    keep("web viewer", viewer)
    # Page through the whole log by the viewer's own windows, forwards then backwards.
    after, line = 0, 1
    while True:
        window = job.web.get(f"{page}/log", params={"after": after, "line": line})
        keep(f"web after={after}", window)
        to = int(re.search(r'data-to="(\d+)"', window.text).group(1))  # type: ignore[union-attr]
        if to == after:
            break
        line = int(re.search(r'data-next-line="(\d+)"', window.text).group(1))  # type: ignore[union-attr]
        after = to
    for before in (len(LOG), 2 * MIB + 1, MIB, 4000):
        keep(
            f"web before={before}",
            job.web.get(f"{page}/log", params={"before": before, "line": 9000}),
        )
    keep("web download", job.web.get(f"{page}/log.txt"))
    keep("web download range", job.web.get(f"{page}/log.txt", headers={"Range": "bytes=-100"}))
    with stream(job.web, f"/organizations/acme/live?log={job.id}") as messages:
        answers["live tail"] = (200, {}, repr(next(messages)).encode())
    return answers


def test_every_log_endpoint_answers_the_same_bytes_after_compaction(finished: Finished) -> None:
    before = every_read(finished)
    assert before[f"{BUILD}/jobs/{finished.id} txt"][2] == LOG
    assert before["sdk job_log"][2] == LOG
    assert before["web download"][2] == LOG
    assert stored(finished.server, finished.id) == (4, None)

    assert compact(finished.server, finished.id) is True
    assert stored(finished.server, finished.id) == (0, "compacted")
    key = compaction.object_key(uuid.UUID(finished.id))
    stored_object = Path(finished.server.settings.resolved_blob_dir) / key
    assert stored_object.stat().st_size < len(LOG) // 3
    after = every_read(finished)

    assert list(after) == list(before)
    for name in before:
        assert after[name] == before[name], name
    # Compacting again finds nothing to do and changes nothing.
    assert compact(finished.server, finished.id) is False
    assert every_read(finished) == before


def test_the_object_is_the_log_gzipped(finished: Finished) -> None:
    import gzip

    assert compact(finished.server, finished.id) is True
    key = compaction.object_key(uuid.UUID(finished.id))
    data = (Path(finished.server.settings.resolved_blob_dir) / key).read_bytes()
    assert gzip.decompress(data) == LOG


def test_a_compacted_log_deleted_through_the_api_reads_as_deleted(finished: Finished) -> None:
    assert compact(finished.server, finished.id) is True
    key = compaction.object_key(uuid.UUID(finished.id))
    stored_object = Path(finished.server.settings.resolved_blob_dir) / key
    assert stored_object.exists()
    url = f"{BUILD}/jobs/{finished.id}/log"
    assert finished.api.delete(url).status_code == 204
    assert not stored_object.exists()
    assert stored(finished.server, finished.id) == (0, "deleted")
    body = finished.api.get(url).json()
    assert body == {
        "url": f"{finished.server.url}{BUILD}/jobs/{finished.id}/log",
        "content": "",
        "size": 0,
        "header_times": [],
    }
    assert finished.api.get(f"{url}.txt").content == b""
    viewer = finished.web.get(
        f"/acme/p/builds/1/jobs/{finished.id}/log", headers={"HX-Request": "true"}
    )
    assert viewer.status_code == 200
    assert "This job's log was deleted." in viewer.text
    assert compact(finished.server, finished.id) is False


def test_the_servers_sweep_compacts_finished_logs(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(log_compaction_delay_seconds=0, worker_interval_seconds=0.2)
    job = Finished(server, b"small log\n")
    try:
        wait_until(
            lambda: stored(server, job.id) == (0, "compacted"), what="the sweep to compact the log"
        )
        assert job.api.get(f"{BUILD}/jobs/{job.id}/log.txt").content == b"small log\n"
    finally:
        job.close()


def test_two_compactors_at_once_compact_the_log_once(finished: Finished) -> None:
    """As when sweep leadership changes hands mid-round: both write the object (the same
    bytes), one records it."""

    async def both() -> list[bool]:
        engines = [create_engine(finished.server.settings.resolved_database_url) for _ in "ab"]
        store = FilesystemBlobStore(finished.server.settings.resolved_blob_dir)
        try:
            return list(
                await asyncio.gather(
                    *(
                        compaction.compact_log(
                            create_sessionmaker(engine), store, uuid.UUID(finished.id)
                        )
                        for engine in engines
                    )
                )
            )
        finally:
            for engine in engines:
                await engine.dispose()

    assert sorted(run_async(both)) == [False, True]
    assert stored(finished.server, finished.id) == (0, "compacted")
    text = finished.api.get(f"{BUILD}/jobs/{finished.id}/log.txt")
    assert (text.status_code, text.content) == (200, LOG)


def test_a_log_compacted_while_it_is_being_sent_is_sent_whole_from_the_object(
    finished: Finished,
) -> None:
    """The reader found the chunks (its layout), then compaction deleted them before their
    bytes were read: the rest comes from the object, the same bytes."""
    from kiteline.server.logs import service as logs

    server, job_id = finished.server, uuid.UUID(finished.id)
    start, stop = 1000, len(LOG) - 5

    async def go() -> tuple[bytes, bool]:
        engine = create_engine(server.settings.resolved_database_url)
        try:
            sessions = create_sessionmaker(engine)
            store = FilesystemBlobStore(server.settings.resolved_blob_dir)
            async with transaction(sessions, read_only=True) as session:
                layout = await logs.open_log(session, job_id, complete=True)
            assert isinstance(layout, logs.LogLayout)  # still in chunks when the send begins
            sending = compaction.log_bytes(sessions, store, layout, start, stop)
            moved = await compaction.compact_log(sessions, store, job_id)
            return b"".join([part async for part in sending]), moved
        finally:
            await engine.dispose()

    sent, moved = run_async(go)
    assert moved
    assert stored(server, finished.id) == (0, "compacted")
    assert sent == LOG[start:stop]
