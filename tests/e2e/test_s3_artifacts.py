"""End to end with artifacts in S3 (moto's S3 server): a `kiteline server` process with
KITELINE_BLOB_URL=s3://…, a real agent whose job uploads an artifact and whose next job
downloads it, then REST and `kiteline artifact download`. Every byte the agent sends the server
is counted on the way: the artifact's bytes go to S3 only."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.support.processes import kiteline_command, kiteline_env, running
from tests.support.s3 import S3Service
from tests.support.stack import ORG, stack

SIZE = 3 * 1024 * 1024

PIPELINE = f"""
steps:
  - label: produce
    key: produce
    artifact_paths: "out/*.bin"
    command: |
      mkdir -p out
      head -c {SIZE} /dev/urandom > out/blob.bin
      sha256sum out/blob.bin
  - wait
  - label: consume
    command: |
      buildkite-agent artifact download "out/*.bin" fetched
      sha256sum fetched/out/blob.bin
"""


class CountingProxy:
    """A TCP proxy to one server that counts the bytes its clients send through it."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").rpartition(":")
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self.sent = 0
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _pipe(self, source: socket.socket, target: socket.socket, count: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                target.sendall(data)
        for end in (source, target):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for source, target, count in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pipe, args=(source, target, count), daemon=True
                ).start()

    def close(self) -> None:
        self._listener.close()


@contextmanager
def counting_proxy(target: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(target)
    threading.Thread(target=proxy.serve, daemon=True).start()
    try:
        yield proxy
    finally:
        proxy.close()


def test_artifacts_go_between_the_agent_and_s3_only(
    database_url: str, tmp_path: Path, s3: S3Service
) -> None:
    blob_url = s3.blob_url()
    with stack(database_url, tmp_path, blob_url=blob_url) as s, counting_proxy(s.url) as proxy:
        slug = s.pipeline("Big", PIPELINE)
        agent_args = [
            *("agent", "start", "--endpoint", proxy.url, "--token", s.agent_token),
            *("--name", "runner", "--tags", "queue=default", "--spawn", "1"),
            *("--build-path", str(tmp_path / "builds")),
        ]
        with running(agent_args, kiteline_env(s.data_dir), tmp_path / "agent.log"):
            s.trigger(slug)
            build = s.finished(slug, 1)
        logs = {job["name"]: s.log(job) for job in build["jobs"] if job["type"] == "script"}
        base = f"/v2/organizations/{ORG}/pipelines/{slug}/builds/1"
        (artifact,) = s.client.get(f"{base}/artifacts").json()
        redirect = s.client.get(artifact["download_url"])
        via_rest = httpx.get(redirect.headers["location"]).content
        dest = tmp_path / "cli"
        cli = subprocess.run(
            kiteline_command(
                *("artifact", "download", slug, "1", "--dest", str(dest)),
                *("--url", s.url, "--token", s.api_token, "--org", ORG, "--json"),
            ),
            env=kiteline_env(s.data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        sent_to_server = proxy.sent

    assert build["state"] == "passed", logs
    # One object, at the artifact's key: Kiteline's agent declares an MD5, so its form goes
    # straight there and the ETag is checked (no incoming/ copy left behind either way).
    (stored,) = s3.keys(blob_url)
    assert stored.startswith("artifacts/")
    assert stored.endswith(f"/{build['id']}/{artifact['id']}")
    in_bucket = s3.get(blob_url, stored)
    assert len(in_bucket) == SIZE
    sha256 = hashlib.sha256(in_bucket).hexdigest()
    assert (artifact["path"], artifact["state"], artifact["file_size"], artifact["sha1sum"]) == (
        "out/blob.bin",
        "finished",
        SIZE,
        hashlib.sha1(in_bucket).hexdigest(),
    )
    assert f"{sha256}  out/blob.bin" in logs["produce"]
    assert f"{sha256}  fetched/out/blob.bin" in logs["consume"]

    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith(f"{s3.endpoint}/{s3.bucket}/")
    assert via_rest == in_bucket
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == {"files": [str(dest / "out" / "blob.bin")]}
    assert (dest / "out" / "blob.bin").read_bytes() == in_bucket
    # Both jobs' whole conversation with the server (logs included) is far smaller than the
    # artifact it uploaded and downloaded: its bytes went to S3, never to the server.
    assert sent_to_server < SIZE // 10, sent_to_server
