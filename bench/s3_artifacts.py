"""Artifact throughput with the S3 store: through Kiteline against a direct boto3 transfer of
the same files, both to moto's S3 server on loopback.

    python bench/s3_artifacts.py [--backend sqlite|postgresql] [--files 4] [--megabytes 16]
                                 [--rounds 3]

A `kiteline server` with KITELINE_BLOB_URL=s3://…; an agent (the Kiteline agent's own API
client) takes a job, and each round:
- Kiteline upload: the agent's `artifact upload` code (register the batch with each file's
  SHA-1, SHA-256 and MD5, a form POST of each file to its pre-signed S3 URL, which pins
  `Content-MD5`, then "finished", which has the server compare each one's ETag in S3);
- Kiteline download: the SDK's `download_artifacts` (REST list, a 302 per artifact to a
  pre-signed S3 GET, SHA-1 checked);
- boto3: `upload_file` and `download_file` of the same files, the same bucket; and
  `upload_file` with a SHA-256 checksum S3 verifies (the guarantee Kiteline's check gives).
Throughput is MB (MiB) per second of wall time, best of the rounds (the machine is shared), and
per CPU second of every process involved (this one, moto's, Kiteline's server): the machine's
load barely moves the latter (null when a transfer too small spent no clock tick). Target:
Kiteline within 80 % of boto3. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    Kiteline,
    argument_parser,
    create_build,
    create_pipeline,
    database,
    database_info,
    emit,
    exit_on_sigterm,
    free_port,
    kiteline,
    progress,
    stop,
    take_started_job,
)

from kiteline.agent.api import AgentApi, Session
from kiteline.agent.in_job.artifact_upload import upload_artifacts
from kiteline.agent.in_job.context import JobEnvironment
from kiteline.client import Client

MIB = 1024 * 1024
BUCKET = "kiteline-bench"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


@contextmanager
def moto(work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """moto's S3 server on a loopback port, with the AWS variables every process inherits."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (work / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("moto's server did not start") from None
                time.sleep(0.1)
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
        )
        yield endpoint, process
    finally:
        stop(process)


async def _job(k: Kiteline) -> tuple[str, str, str]:
    """An agent takes the build's one job: its id, token and build id."""
    async with httpx.AsyncClient(timeout=120) as http:
        api = AgentApi(http, Session(endpoint=f"{k.url}/v3"), k.agent_token)
        _, job = await take_started_job(api, "bench-s3")
        return job.id, job.token, str(job.env.get("BUILDKITE_BUILD_ID", ""))


#: CPU seconds per process of the last measure: this one (the client), moto, the server.
SPLIT: dict[str, list[float]] = {}


def _measure(action: Callable[[], Any], pids: list[int], name: str = "") -> tuple[float, float]:
    """Wall seconds and CPU seconds (these processes, this one included) of `action`."""
    before = [_cpu(pid) for pid in pids]
    began = time.perf_counter()
    action()
    wall = time.perf_counter() - began
    spent = [_cpu(pid) - was for pid, was in zip(pids, before, strict=True)]
    SPLIT[name] = [round(value, 2) for value in spent]
    return wall, sum(spent)


def _round(
    work: Path,
    files: Path,
    round_: int,
    env: JobEnvironment,
    client: Client,
    pipeline: str,
    s3: Any,
    pids: list[int],
    results: dict[str, list[tuple[float, float]]],
) -> None:
    """One round: the same files (hard links) under `round-N/`, so each round's artifacts
    have their own paths and are downloaded alone."""
    folder = work / f"round-{round_}"
    folder.mkdir()
    for path in sorted(files.iterdir()):
        (folder / path.name).hardlink_to(path)
    count = len(list(folder.iterdir()))

    def upload() -> None:
        asyncio.run(upload_artifacts(env, f"{folder.name}/*.bin", cwd=work, say=lambda _: None))

    def download() -> None:
        written = client.download_artifacts(
            pipeline, 1, f"{folder.name}/*", work / f"down-{round_}"
        )
        if len(written) != count:
            raise SystemExit(f"downloaded {len(written)} artifacts, expected {count}")

    keys = [f"direct/{round_}/{path.name}" for path in sorted(folder.iterdir())]

    def boto3_upload() -> None:
        for path, key in zip(sorted(folder.iterdir()), keys, strict=True):
            s3.upload_file(str(path), BUCKET, key)

    def boto3_upload_sha256() -> None:
        # The same guarantee as Kiteline's check: S3 verifies a SHA-256 of the bytes.
        for path, key in zip(sorted(folder.iterdir()), keys, strict=True):
            s3.upload_file(str(path), BUCKET, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"})

    def boto3_download() -> None:
        target = work / f"direct-{round_}"
        target.mkdir()
        for key in keys:
            s3.download_file(BUCKET, key, str(target / key.rsplit("/", 1)[1]))

    for name, action in (
        ("kiteline_upload", upload),
        ("kiteline_download", download),
        ("boto3_upload", boto3_upload),
        ("boto3_download", boto3_download),
        ("boto3_upload_sha256", boto3_upload_sha256),
    ):
        results[name].append(_measure(action, pids, name))


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--megabytes", type=float, default=16, help="MiB per file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    exit_on_sigterm()
    import boto3

    with tempfile.TemporaryDirectory(prefix="kiteline-bench-s3-") as tmp:
        work = Path(tmp)
        files = work / "files"
        files.mkdir()
        for index in range(args.files):
            (files / f"blob-{index}.bin").write_bytes(os.urandom(int(args.megabytes * MIB)))
        total_mib = args.files * args.megabytes
        with (
            moto(work) as (endpoint, moto_process),
            database(args.backend, work) as url,
            kiteline(url, KITELINE_BLOB_URL=f"s3://{BUCKET}/kiteline") as k,
        ):
            s3 = boto3.session.Session().client("s3", endpoint_url=endpoint)
            s3.create_bucket(Bucket=BUCKET)
            pipeline = create_pipeline(k.client(), "s3", "steps:\n  - command: 'true'\n")
            create_build(k.client(), pipeline)
            job_id, job_token, build_id = asyncio.run(_job(k))
            env = JobEnvironment(
                {
                    "BUILDKITE_AGENT_ENDPOINT": f"{k.url}/v3",
                    "BUILDKITE_AGENT_ACCESS_TOKEN": job_token,
                    "BUILDKITE_JOB_ID": job_id,
                    "BUILDKITE_BUILD_ID": build_id,
                }
            )
            pids = [os.getpid(), moto_process.pid, k.server.pid]
            client = Client(k.url, k.api_token, org=ORG)
            names = (
                "kiteline_upload",
                "kiteline_download",
                "boto3_upload",
                "boto3_download",
                "boto3_upload_sha256",
            )
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                progress(f"round {round_ + 1} of {args.rounds}")
                _round(work, files, round_, env, client, pipeline, s3, pids, results)
            client.close()
            info = database_info(url)

    def rate(mib: float, seconds: float) -> float | None:
        """MiB per second; None when too little was spent to measure (CPU time counts in
        clock ticks: a tiny transfer can take none)."""
        return mib / seconds if seconds > 0 else None

    def best(name: str) -> dict[str, float | None]:
        wall = min(wall for wall, _ in results[name])
        cpu = min(cpu for _, cpu in results[name])
        return {"mib_per_s": rate(total_mib, wall), "mib_per_cpu_s": rate(total_mib, cpu)}

    def percent(ours: float | None, theirs: float | None) -> int | None:
        return round(100 * ours / theirs) if ours is not None and theirs else None

    rates = {name: best(name) for name in results}
    measured = {
        name: {unit: None if value is None else round(value, 1) for unit, value in got.items()}
        for name, got in rates.items()
    }
    ratios = {
        f"{way}_percent_of_{against}": {
            label: percent(rates[f"kiteline_{way}"][unit], rates[against_name][unit])
            for unit, label in (("mib_per_s", "wall"), ("mib_per_cpu_s", "cpu"))
        }
        for way, against, against_name in (
            ("upload", "boto3", "boto3_upload"),
            ("download", "boto3", "boto3_download"),
            ("upload", "boto3_sha256", "boto3_upload_sha256"),
        )
    }
    emit(
        {
            "benchmark": "s3_artifacts",
            "backend": args.backend,
            **info,
            "files": args.files,
            "mib_per_file": args.megabytes,
            "rounds": args.rounds,
            **measured,
            **ratios,
            "last_round_cpu_s_client_moto_server": SPLIT,
            "target_percent": 80,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    )


if __name__ == "__main__":
    main()
