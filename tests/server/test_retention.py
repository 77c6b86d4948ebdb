"""Retention: the logs and artifacts of builds finished longer ago than their settings say are
deleted (their blob-store objects too) and answered as deleted/expired; finished webhook
deliveries older than theirs are forgotten, pending ones never."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from kiteline.server.blobs import FilesystemBlobStore
from kiteline.server.kit.db import create_engine, create_sessionmaker
from kiteline.server.logs import compaction
from kiteline.server.workers import housekeeping
from kiteline.settings import Settings
from tests.server.test_artifacts import BUILD, CONTENT, _uploaded
from tests.server.test_log_compaction import compact, stored
from tests.support.live_server import LiveServer
from tests.support.processes import wait_until
from tests.support.run_async import run_async
from tests.support.web import give_password, signed_in

RECEIVER = "http://127.0.0.1:9/buildkite"  # nothing listens: a delivery fails at once


def sweep(
    server: LiveServer,
    run: Callable[[Any, FilesystemBlobStore, Settings], Awaitable[int]],
    **retention: float,
) -> int:
    """One round of a retention sweep, with `retention` settings, on the server's database."""

    async def go() -> int:
        engine = create_engine(server.settings.resolved_database_url)
        try:
            store = FilesystemBlobStore(server.settings.resolved_blob_dir)
            settings = server.settings.model_copy(update=retention)
            return await run(create_sessionmaker(engine), store, settings)
        finally:
            await engine.dispose()

    return run_async(go)


def expire_logs(server: LiveServer, seconds: float) -> int:
    return sweep(server, housekeeping.expire_logs, log_retention_seconds=seconds)


def expire_artifacts(server: LiveServer, seconds: float) -> int:
    return sweep(server, housekeeping.expire_artifacts, artifact_retention_seconds=seconds)


@pytest.fixture
def finished(server_without_sweeps: LiveServer) -> Iterator[tuple[LiveServer, Any, dict, str]]:
    server = server_without_sweeps
    client, agent, job, artifact_id = _uploaded(server)
    url = f"{BUILD}/jobs/{job['id']}/log"
    for sequence, offset, data in ((0, 0, b"first\n"), (1, 6, b"second\n")):
        assert agent.log(job, sequence, offset, data).status_code == 201
    assert agent.finish(job, "0").status_code == 200
    assert client.get(f"{url}.txt").content == b"first\nsecond\n"
    yield server, client, job, artifact_id
    client.close()


@pytest.fixture
def server_without_sweeps(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(log_compaction=False, webhook_delivery_retention_seconds=0)


@pytest.mark.parametrize("compacted", [False, True], ids=["chunks", "compacted"])
def test_an_expired_log_is_deleted_and_answered_as_a_deleted_log(
    finished: tuple[LiveServer, Any, dict, str], compacted: bool
) -> None:
    server, client, job, _ = finished
    if compacted:
        assert compact(server, job["id"]) is True
    key = Path(server.settings.resolved_blob_dir) / compaction.object_key(uuid.UUID(job["id"]))
    assert key.exists() is compacted
    # Retention longer than the build's age keeps it.
    assert expire_logs(server, 3600) == 0
    assert client.get(f"{BUILD}/jobs/{job['id']}/log.txt").content == b"first\nsecond\n"

    assert expire_logs(server, 1e-6) == 1
    assert not key.exists()
    assert stored(server, job["id"]) == (0, "deleted")
    url = f"{BUILD}/jobs/{job['id']}/log"
    assert client.get(url).json() == {
        "url": f"{server.url}{url}",
        "content": "",
        "size": 0,
        "header_times": [],
    }
    text = client.get(f"{url}.txt")
    assert (text.status_code, text.content, text.headers["content-length"]) == (200, b"", "0")
    ranged = client.get(f"{url}.txt", headers={"Range": "bytes=-5"})
    assert (ranged.status_code, ranged.json()) == (
        416,
        {"message": "Range not satisfiable: the log has 0 bytes"},
    )
    assert client.get(f"{url}.html").text == '<pre class="term-container"></pre>'
    assert expire_logs(server, 1e-6) == 0  # nothing left to delete

    identity = server.identities[0]
    give_password(server, identity)
    with closing(signed_in(server, identity.email)) as web:
        viewer = web.get(f"/acme/p/builds/1/jobs/{job['id']}/log", headers={"HX-Request": "true"})
        assert viewer.status_code == 200
        assert "This job's log was deleted." in viewer.text
        assert "This job wrote no log." not in viewer.text
        download = web.get(f"/acme/p/builds/1/jobs/{job['id']}/log.txt")
        assert (download.status_code, download.content) == (200, b"")


def test_an_expired_artifact_keeps_its_record_with_state_expired_and_no_file(
    finished: tuple[LiveServer, Any, dict, str],
) -> None:
    server, client, job, artifact_id = finished
    url = f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}"
    assert client.get(f"{url}/download").status_code == 302
    assert expire_artifacts(server, 3600) == 0

    assert expire_artifacts(server, 1e-6) == 1
    artifact = client.get(url).json()
    assert (artifact["state"], artifact["file_size"]) == ("expired", len(CONTENT))
    download = client.get(f"{url}/download")
    assert (download.status_code, download.json()) == (404, {"message": "Artifact has expired"})
    (listed,) = client.get(f"{BUILD}/artifacts", params={"state": "expired"}).json()
    assert listed["id"] == artifact_id
    assert client.get(f"{BUILD}/artifacts", params={"state": "finished"}).json() == []
    blobs = Path(server.settings.resolved_blob_dir)
    assert [path for path in blobs.rglob("*") if path.is_file()] == []
    assert expire_artifacts(server, 1e-6) == 0


def test_old_finished_webhook_deliveries_are_forgotten(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(webhook_max_attempts=1, webhook_delivery_retention_seconds=0)
    client = server.client(server.identity("acme").api_token)
    created = client.post(
        "/v2/organizations/acme/services",
        json={"provider": "webhook", "settings": {"url": RECEIVER}},
    )
    assert created.status_code == 201, created.text
    deliveries = f"/v2/organizations/acme/services/{created.json()['id']}/deliveries"
    failed = wait_until(
        lambda: (
            [d for d in client.get(deliveries).json()["items"] if d["state"] == "failed"] or None
        ),
        what="the ping to fail",
    )
    assert [d["event"] for d in failed] == ["ping"]

    forget = housekeeping.forget_deliveries
    assert sweep(server, lambda s, _, c: forget(s, c), webhook_delivery_retention_seconds=3600) == 0
    assert sweep(server, lambda s, _, c: forget(s, c), webhook_delivery_retention_seconds=1e-6) == 1
    assert client.get(deliveries).json()["items"] == []
    client.close()


def test_the_servers_sweep_applies_retention(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(
        log_retention_seconds=1e-6, artifact_retention_seconds=1e-6, worker_interval_seconds=0.2
    )
    client, agent, job, artifact_id = _uploaded(server)
    assert agent.log(job, 0, 0, b"kept until the build finishes\n").status_code == 201
    assert client.get(f"{BUILD}/jobs/{job['id']}/log.txt").content != b""
    assert agent.finish(job, "0").status_code == 200
    wait_until(lambda: stored(server, job["id"]) == (0, "deleted"), what="the log to expire")
    url = f"{BUILD}/jobs/{job['id']}/artifacts/{artifact_id}"
    wait_until(lambda: client.get(url).json()["state"] == "expired", what="the artifact to expire")
    blob = Path(server.settings.resolved_blob_dir) / "artifacts"
    assert [p for p in blob.rglob("*") if p.is_file()] == []
    client.close()
