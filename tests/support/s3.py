"""A real S3-protocol server for the tests: moto's server (`python -m moto.server`) on a
loopback port, one per test process, with a bucket.

Use it by asking for the `s3` fixture (tests/conftest.py). While it is up, this process's
environment has AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION
set, so every server started afterwards — in-process (`make_server`) or as a `kiteline
server` process (tests/support/processes.py copies the environment) — reaches it; give that
server `blob_url=s3.blob_url()` (a fresh prefix in the bucket, so tests don't see each
other's objects). Where moto can't start, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import free_port

BUCKET = "kiteline-test"
REGION = "us-east-1"
#: moto accepts any credentials; these are the ones the tests' servers and boto3 use.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kiteline-test", "AWS_SECRET_ACCESS_KEY": "kiteline-test"}


class S3Unavailable(Exception):
    """moto could not be started here (the reason is the message)."""


@dataclass
class S3Service:
    endpoint: str
    bucket: str
    client: Any
    """A boto3 client on the service, to look at the bucket from the test."""

    @property
    def env(self) -> dict[str, str]:
        """The variables a process needs to reach the service (already in os.environ)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, **CREDENTIALS}

    def blob_url(self) -> str:
        """KITELINE_BLOB_URL for one server (or one group of replicas): a fresh prefix."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"

    def keys(self, blob_url: str) -> list[str]:
        prefix = blob_url.removeprefix(f"s3://{self.bucket}/") + "/"
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"].removeprefix(prefix) for item in listed.get("Contents", [])]

    def get(self, blob_url: str, key: str) -> bytes:
        prefix = blob_url.removeprefix(f"s3://{self.bucket}/")
        answer = self.client.get_object(Bucket=self.bucket, Key=f"{prefix}/{key}")
        return bytes(answer["Body"].read())


@contextmanager
def moto_server(log: Path) -> Iterator[S3Service]:
    """moto's S3 server on a free loopback port, its environment set, a bucket made."""
    try:
        import boto3
        import moto.server  # noqa: F401  (installed with the dev extras: moto[server])
    except ImportError as error:
        raise S3Unavailable(f"moto[server] is not installed ({error})") from error
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(endpoint, process, log)
            saved = {name: os.environ.get(name) for name in _ENV_NAMES}
            service_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, **CREDENTIALS}
            for name in _ENV_NAMES:
                os.environ.pop(name, None)
            os.environ.update(service_env)
            try:
                client = boto3.session.Session().client(
                    "s3", endpoint_url=endpoint, region_name=REGION
                )
                client.create_bucket(Bucket=BUCKET)
                yield S3Service(endpoint=endpoint, bucket=BUCKET, client=client)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


#: Variables that would point boto3 elsewhere: replaced while the service is up.
_ENV_NAMES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


def _wait_for(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-2000:]
            raise S3Unavailable(f"moto's server exited with {process.returncode}: {output}")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise S3Unavailable(f"moto's server did not answer on {endpoint} within 60 s")
