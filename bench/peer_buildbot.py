"""The peer: Buildbot on the same workload as bench/dispatch.py, measured from its own data.

    bench/peer_buildbot.sh [--workers 4] [--builds 1000]        (installs Buildbot first)
    python bench/peer_buildbot.py --buildbot-bin VENV/bin [...]  (with Buildbot installed)

One builder whose single step runs `true`, the given number of workers on loopback, builds
forced through Buildbot's REST API (`POST /api/v2/forceschedulers/force`, JSON-RPC `force`)
with request collapsing off, so every request is its own build. A Buildbot build is the unit
that a Kiteline job is: one `true` on a worker, dispatched on its own.

Latency: one build at a time, each waited for, submitted -> started from Buildbot's
buildrequests.submitted_at and builds.started_at. Buildbot stores those in whole seconds, so
the client-observed time from the force call's answer to the build appearing (polled every
20 ms) is reported beside them. Throughput: the builds forced back to back, timed from the
first force to the last build complete (or to --timeout, counting the builds complete by
then). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    emit,
    exit_on_sigterm,
    free_port,
    peak_rss_mb,
    progress,
    stop,
    summary_ms,
    wait_for,
)

BUILDER = "true"
SCHEDULER = "force"

MASTER_CFG = """\
# Written by Kiteline's bench/peer_buildbot.py: one builder running `true`, {workers} workers.
from buildbot.plugins import schedulers, steps, util, worker

WORKERS = [f"worker-{{n}}" for n in range({workers})]

c = BuildmasterConfig = {{}}
c["title"] = "kiteline-bench"
c["buildbotURL"] = "http://127.0.0.1:{www_port}/"
c["buildbotNetUsageData"] = None
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["www"] = {{"port": "tcp:{www_port}:interface=127.0.0.1", "plugins": {{}}}}
c["workers"] = [worker.Worker(name, "bench") for name in WORKERS]
c["collapseRequests"] = False  # one build per request, as Kiteline runs one job per job
c["schedulers"] = [schedulers.ForceScheduler(name="{scheduler}", builderNames=["{builder}"])]
c["builders"] = [
    util.BuilderConfig(
        name="{builder}",
        workernames=WORKERS,
        factory=util.BuildFactory([steps.ShellCommand(command=["true"])]),
    )
]
"""


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run(
        argv, cwd=cwd, check=True, timeout=300, stdout=sys.stderr, stderr=subprocess.STDOUT
    )


def _start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            argv, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextmanager
def _running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        stop(process)


class Buildbot:
    """The REST API of a running master."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/api/v2", timeout=60)
        self.builder_id = 0

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def connected_workers(self) -> int:
        workers = self.get("/workers", field=["name", "connected_to"])["workers"]
        return sum(1 for worker in workers if worker["connected_to"])

    def force(self) -> int:
        """Force one build; returns its build request id."""
        response = self.http.post(
            f"/forceschedulers/{SCHEDULER}",
            json={
                "jsonrpc": "2.0",
                "method": "force",
                "id": 1,
                "params": {"builderid": str(self.builder_id)},
            },
        )
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            raise SystemExit(f"Buildbot refused to force a build: {body['error']}")
        _buildset, requests = body["result"]
        return int(next(iter(requests.values())))

    def incomplete_requests(self) -> int:
        body = self.get("/buildrequests", complete="false", field=["buildrequestid", "complete"])
        return int(body["meta"]["total"])

    def started(self, request_id: int) -> bool:
        builds = self.get(f"/buildrequests/{request_id}/builds", field=["buildid"])["builds"]
        return bool(builds)

    def complete(self, request_id: int) -> bool:
        request = self.get(f"/buildrequests/{request_id}", field=["complete"])["buildrequests"]
        return bool(request and request[0]["complete"])

    def timings(self) -> tuple[dict[int, int], dict[int, dict[str, Any]]]:
        """submitted_at per build request and (started_at, complete_at, results) per request."""
        requests = self.get("/buildrequests", field=["buildrequestid", "submitted_at"])
        builds = self.get(
            "/builds", field=["buildrequestid", "started_at", "complete_at", "results"]
        )
        submitted = {r["buildrequestid"]: r["submitted_at"] for r in requests["buildrequests"]}
        return submitted, {b["buildrequestid"]: b for b in builds["builds"]}


def _setup(bin_dir: Path, work: Path, workers: int) -> tuple[int, int]:
    pb_port, www_port = free_port(), free_port()
    _run([str(bin_dir / "buildbot"), "create-master", "--quiet", "--relocatable", "master"], work)
    (work / "master" / "master.cfg").write_text(
        MASTER_CFG.format(
            workers=workers,
            www_port=www_port,
            pb_port=pb_port,
            scheduler=SCHEDULER,
            builder=BUILDER,
        )
    )
    _run([str(bin_dir / "buildbot"), "checkconfig", "master"], work)
    for n in range(workers):
        name = f"worker-{n}"
        _run(
            [
                str(bin_dir / "buildbot-worker"),
                "create-worker",
                "--quiet",
                name,
                f"127.0.0.1:{pb_port}",
                name,
                "bench",
            ],
            work,
        )
    return pb_port, www_port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--buildbot-bin", type=Path, required=True, help="bin/ of a venv with Buildbot"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--builds", type=int, default=1000, help="builds in the throughput run")
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds for the builds: past it, builds/s counts the builds complete by then",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    bin_dir: Path = args.buildbot_bin.resolve()
    version = subprocess.run(
        [str(bin_dir / "buildbot"), "--version"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    with (
        tempfile.TemporaryDirectory(prefix="kiteline-bench-buildbot-") as tmp,
        ExitStack() as stack,
    ):
        work = Path(tmp)
        _, www_port = _setup(bin_dir, work, args.workers)
        master = stack.enter_context(
            _running(
                _start(
                    [str(bin_dir / "buildbot"), "start", "--nodaemon", "master"],
                    work,
                    work / "master.out",
                )
            )
        )
        buildbot = Buildbot(f"http://127.0.0.1:{www_port}")
        stack.callback(buildbot.http.close)

        def answering() -> bool:
            if master.poll() is not None:
                raise SystemExit(f"the Buildbot master exited; see {work}/master/twistd.log")
            try:
                builders = buildbot.get("/builders", name=BUILDER)["builders"]
            except httpx.HTTPError:
                return False
            buildbot.builder_id = builders[0]["builderid"]
            return True

        wait_for(answering, timeout=120, what="the Buildbot master's start", interval=0.2)
        worker_processes = [
            stack.enter_context(
                _running(
                    _start(
                        [str(bin_dir / "buildbot-worker"), "start", "--nodaemon", f"worker-{n}"],
                        work,
                        work / f"worker-{n}.out",
                    )
                )
            )
            for n in range(args.workers)
        ]
        wait_for(
            lambda: buildbot.connected_workers() == args.workers,
            timeout=120,
            what=f"{args.workers} Buildbot workers connecting",
            interval=0.2,
        )
        time.sleep(2)
        idle_rss = {
            "master": peak_rss_mb(master.pid),
            "worker": peak_rss_mb(worker_processes[0].pid),
        }

        progress(f"buildbot: {args.latency_samples} latency samples")
        latency_requests: list[int] = []
        observed: list[float] = []
        for _ in range(args.latency_samples):
            request_id = buildbot.force()
            forced = time.perf_counter()
            latency_requests.append(request_id)
            wait_for(
                functools.partial(buildbot.started, request_id),
                timeout=60,
                what="a Buildbot build starting",
                interval=0.02,
            )
            observed.append(time.perf_counter() - forced)
            wait_for(
                functools.partial(buildbot.complete, request_id),
                timeout=60,
                what="a Buildbot build completing",
                interval=0.05,
            )

        progress(f"buildbot: {args.builds} builds")
        started = time.monotonic()
        deadline = started + args.timeout
        batch: list[int] = []
        while len(batch) < args.builds and time.monotonic() < deadline:
            batch.append(buildbot.force())
        submitted_s = time.monotonic() - started
        while buildbot.incomplete_requests() and time.monotonic() < deadline:
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        load_rss = {
            "master": peak_rss_mb(master.pid),
            "worker": peak_rss_mb(worker_processes[0].pid),
        }
        submitted_at, builds = buildbot.timings()

    idle = [builds[r]["started_at"] - submitted_at[r] for r in latency_requests if r in builds]
    done = [r for r in batch if builds.get(r, {}).get("complete_at") is not None]
    failed = sum(1 for r in done if builds[r]["results"] != 0)
    own_span = max(builds[r]["complete_at"] for r in done) - min(submitted_at[r] for r in batch)
    emit(
        {
            "benchmark": "peer_buildbot",
            "buildbot": version[2] if len(version) > 2 else "unknown",
            "database": "SQLite (Buildbot's default)",
            "workers": args.workers,
            "idle_latency_own_data": {
                **summary_ms([float(seconds) for seconds in idle]),
                "resolution": "1 s (Buildbot stores whole seconds)",
            },
            "idle_latency_client_observed": summary_ms(observed),
            "builds": len(done),
            "builds_asked": args.builds,
            "all_finished_in_time": len(done) == args.builds,
            "failed_builds": failed,
            "builds_per_second": round(len(done) / elapsed, 2),
            "builds_per_second_own_data": round(len(done) / max(own_span, 1), 2),
            "submit_s": round(submitted_s, 1),
            "elapsed_s": round(elapsed, 1),
            "peak_rss_mb_idle": idle_rss,
            "peak_rss_mb_under_load": load_rss,
        }
    )


if __name__ == "__main__":
    main()
