"""`kill -9` of a real `kiteline server` while it compacts a finished job's log: between the
object written and the chunks deleted (held there by the test-only pause), with the object then
cut short as if its write had been interrupted. Nothing is lost: the restarted server compacts
the log again, overwriting the object, and every read gives the same bytes as before."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path

from sqlalchemy import func, select

from kiteline.server.kit.db import create_engine, create_sessionmaker, transaction
from kiteline.server.logs.compaction import PAUSE_ENV, object_key
from kiteline.server.logs.models import JobLog, LogChunk
from tests.support.agent_protocol import ScriptedAgent
from tests.support.processes import kill, wait_until
from tests.support.stack import ORG, stack

MIB = 1024 * 1024
LOG = b"".join(
    f"line {n} \x1b[33m\xc3\xa9t\xc3\xa9\x1b[0m {'.' * (n % 70)}\n".encode() for n in range(60_000)
)


def _stored(database_url: str, job_id: str) -> tuple[int, str | None]:
    async def go() -> tuple[int, str | None]:
        engine = create_engine(database_url)
        try:
            async with transaction(create_sessionmaker(engine), read_only=True) as session:
                chunks = await session.scalar(
                    select(func.count()).where(LogChunk.job_id == uuid.UUID(job_id))
                )
                state = await session.scalar(
                    select(JobLog.state).where(JobLog.job_id == uuid.UUID(job_id))
                )
                return int(chunks or 0), state
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_server_killed_mid_compaction_loses_nothing(database_url: str, tmp_path: Path) -> None:
    settings = {
        "log_compaction_delay_seconds": "0",
        "worker_interval_seconds": "0.2",
        PAUSE_ENV.removeprefix("KITELINE_").lower(): "600",
    }
    with stack(database_url, tmp_path, **settings) as s:
        s.pipeline("Compact", "steps:\n  - command: make\n")
        s.trigger("compact")
        agent = ScriptedAgent.register(s.url, s.agent_token)
        job = agent.take_job()
        third = len(LOG) // 3
        for sequence, offset in ((1, third), (0, 0), (2, 2 * third)):
            end = len(LOG) if sequence == 2 else offset + third
            assert agent.log(job, sequence, offset, LOG[offset:end]).status_code == 201
        assert agent.finish(job, "0").status_code == 200
        log_url = f"/v2/organizations/{ORG}/pipelines/compact/builds/1/jobs/{job['id']}/log"
        before_json = s.client.get(log_url).content
        before_text = s.client.get(f"{log_url}.txt").content
        assert before_text == LOG

        # The server's sweep writes the object, then pauses before the chunks go.
        written = s.data_dir / "blobs" / object_key(uuid.UUID(job["id"]))
        wait_until(written.exists, what="the compactor to write the log's object")
        assert s.server is not None
        kill(s.server)
        assert _stored(database_url, job["id"]) == (3, None)  # the chunks are all there
        # As if the write had been cut short: the next attempt must not trust it.
        written.write_bytes(written.read_bytes()[: written.stat().st_size // 2])

        del s.settings[PAUSE_ENV.removeprefix("KITELINE_").lower()]
        s.start_server()
        wait_until(
            lambda: _stored(database_url, job["id"]) == (0, "compacted"),
            what="the restarted server to compact the log",
        )
        assert gzip.decompress(written.read_bytes()) == LOG
        assert s.client.get(f"{log_url}.txt").content == before_text
        assert s.client.get(log_url).content == before_json
        ranged = s.client.get(f"{log_url}.txt", headers={"Range": f"bytes={MIB - 5}-{MIB + 5}"})
        assert (ranged.status_code, ranged.content) == (206, LOG[MIB - 5 : MIB + 6])
