"""Web UI benchmark: what 50 browsers watching builds and 50 following logs cost the agent API.

    python bench/web_watchers.py [--backend sqlite|postgresql] [--watchers 50] [--agents 4]
                                 [--jobs 200] [--jobs-per-build 10] [--rounds 3]
                                 [--log-streams 50] [--printers 5] [--latency-samples 60]

One server, real `kiteline agent` processes (`--agents` workers) and a pipeline of
`--jobs-per-build` trivial `true` jobs. Throughput is measured as bench/dispatch.py measures
it: `--jobs` jobs as builds created back to back through REST, in jobs per second, from the
first build's `created_at` to the last one's `finished_at` (the server's own timestamps, so
the benchmark's polling for the end, every 0.5 s, does not round the figure). The watched
runs have `--watchers` signed-in clients (each its own session) doing what the build page's
JavaScript does: open a build's page as soon as the build is created (the builds are dealt
out to the watchers in turn, so every build being run is watched), hold its block stream
(the page's `data-block-url`: the server pushes the page's live block each time it changes,
build.js), and when a block shows the build finished, move on to its next build. The
watchers are asyncio httpx clients in a thread of this process (no Chromium: the
JavaScript's requests are what load the server), signed in once before the first run.

Log streams (`--log-streams`, bench/log_streams.py): in the watched runs, that many more
signed-in clients do what the web log viewer does for a running job, following one job's log
after another until each is complete. So that a stream costs what it costs in life, the logs
grow: `--printers` jobs on a queue of their own print a line every quarter of a second,
`--printers` at a time, through every run (with or without followers: the printing is the
same in A and W, only the following differs). A `true` job's log is complete before a browser
could open its stream; following those would measure viewer loads, not streams. Five printers
for 50 streams: ten browsers on each running log, the server reading the followed logs' sizes
once every half second for all of them, each follower asking for its window when its log grew.

Idle dispatch under that load (`--latency-samples`, per side): an agent of its own on queue
`idle`, and single-job builds one at a time for it (each waited for, so the agent is
long-polling when its job becomes runnable), runnable → accepted by the server's timestamps
as bench/dispatch.py measures it; after each run, the same number of samples: after a run
without watchers with none connected, after a watched run with the log followers still
following and the watchers each opening the page of a sampled build (dealt to them in turn,
as the throughput builds are). The printers print throughout, so `p50`/`p99` without and with
differ by the 50 build pages and 50 log streams connected.

The method, so that the run-to-run noise of a shared machine (±15 % between identical runs)
does not decide the figure: runs without watchers (A) and with them (W) alternate against
the same server, `--rounds` watched runs each between two unwatched ones (A W A W A for 2;
3 by default),
after a warm-up run (watched, so that both paths' caches of compiled statements and
templates are full). Each W is compared with the mean of the two A around it, so a drift of
the machine's load during the benchmark cancels: its throughput cost 1 - W / mean(A), and
its extra server CPU time (user + system, from /proc) per job, W - mean(A), in ms and in %.
The figures are the medians of those per-pair values (`pairs`); the medians of all A and all
W runs and the cost between them are given too (`…_from_medians`; moved by a drift). The
CPU per job is the steadier figure: it does not depend on how fast the other processes on
the machine let the server run.

Prints one JSON line: every run, the medians, the costs, and how many blocks the watchers
were sent and pages they opened and what the log followers loaded, were told and fetched
(proof that they were live); the idle dispatch latencies; the server's CPU share with the
followers following and nothing else running but the printers (`…_at_rest`, less the idle
share, with their requests per second); then the server CPU of a page open, a live-block
fetch, a block stream's first block, a log viewer's load and a log window, one at a time on
finished builds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import (
    ORG,
    agents,
    argument_parser,
    bench_server,
    cpu_seconds,
    create_build,
    create_pipeline,
    database_info,
    emit,
    exit_on_sigterm,
    progress,
    summary_ms,
    web_sign_in,
)
from dispatch import _job_times, _wait_finished
from log_streams import PRINTER_QUEUE, Followers, Printers, printer_pipeline, request_costs
from page_watchers import MODES, Watchers


class Profiler:
    """py-spy sampling the server during one run (`--profile DIR`): its folded stacks go to
    DIR/<run>.txt, to split the server's CPU between what it did (see docs/performance.md)."""

    def __init__(self, directory: Path | None, pid: int, name: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "--output",
                str(directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # py-spy attaches

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)


def _server_span_seconds(client: httpx.Client, slug: str, numbers: list[int]) -> float:
    """From the first build's creation to the last finish, by the server's timestamps."""
    created, finished = [], []
    for number in numbers:
        build = client.get(
            f"/v2/organizations/{ORG}/pipelines/{slug}/builds/{number}",
            params={"exclude_jobs": "true", "exclude_pipeline": "true"},
        ).json()
        created.append(datetime.fromisoformat(build["created_at"].replace("Z", "+00:00")))
        finished.append(datetime.fromisoformat(build["finished_at"].replace("Z", "+00:00")))
    return (max(finished) - min(created)).total_seconds()


def _run(
    k: Any,
    client: httpx.Client,
    slug: str,
    builds: int,
    jobs: int,
    watchers: Watchers | None,
    profile: Path | None = None,
    name: str = "",
) -> dict[str, Any]:
    profiler = Profiler(profile, k.server.pid, name)
    cpu_before = cpu_seconds(k.server.pid)
    own_before = time.process_time()  # this process: the REST client and the watchers' thread
    started = time.monotonic()
    numbers = []
    for _ in range(builds):
        build = create_build(client, slug)
        numbers.append(build["number"])
        if watchers is not None:
            watchers.tell_created(build["number"], build["id"])
    _wait_finished(client, slug, numbers, timeout=900, interval=0.5)
    if watchers is not None:
        watchers.wait_idle()
    waited = time.monotonic() - started
    cpu = cpu_seconds(k.server.pid) - cpu_before
    own = time.process_time() - own_before
    profiler.stop()
    elapsed = _server_span_seconds(client, slug, numbers)
    return {
        "numbers": numbers,
        "jobs": jobs,
        "jobs_per_second": round(jobs / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
        "server_cpu_ms_per_job": round(cpu * 1000 / jobs, 2),
        "server_cpu_share": round(cpu / waited, 2),
        "bench_process_cpu_share": round(own / waited, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _latency_samples(
    client: httpx.Client, slug: str, samples: int, watchers: Watchers | None
) -> None:
    """Single-job builds of `slug` (queue `idle`) one at a time, each waited for; each opened
    by a watcher when `watchers`."""
    for _ in range(samples):
        build = create_build(client, slug)
        if watchers is not None:
            watchers.tell_created(build["number"], build["id"], slug)
        _wait_finished(client, slug, [build["number"]], timeout=60, interval=0.05)
    if watchers is not None:
        watchers.wait_idle()


def _idle_latency(url: str, slug: str) -> dict[str, float]:
    rows = asyncio.run(_job_times(url, slug))
    return summary_ms([(row.accepted_at - row.runnable_at).total_seconds() for row in rows])


def _streams_at_rest(k: Any, followers: Followers, idle_share: float) -> dict[str, Any]:
    """The log followers' cost with no other work than the printers': the server's CPU share
    over 5 s while they follow (after 2 s of starting), less its idle share (the printers'
    included), and what they did meanwhile, per second."""
    followers.begin()
    time.sleep(2)
    before = followers.counts()
    share = _idle_share(k)
    after = followers.counts()
    followers.end()
    return {
        "server_cpu_share_of_log_streams_at_rest": round(share - idle_share, 3),
        "log_streams_at_rest_per_second": {
            key: round((after[key] - before[key]) / 5, 1)
            for key in (
                "log_viewers_loaded",
                "log_streams_opened",
                "log_sizes_streamed",
                "log_windows_pushed",
                "log_windows_fetched",
            )
        },
    }


def _idle_share(k: Any, seconds: float = 5) -> float:
    """The server's CPU share over `seconds` of doing nothing asked."""
    before, started = cpu_seconds(k.server.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(k.server.pid) - before) / (time.monotonic() - started)


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key != "numbers"}


def _first_block(web: httpx.Client, url: str) -> None:
    """Open a block stream and read its first block (sent at once: no `have`)."""
    with web.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream:
        if stream.status_code != 200:
            raise SystemExit(f"block stream {url}: {stream.status_code}")
        data = False
        for line in stream.iter_lines():
            data = data or line.startswith("data:")
            if line == "" and data:
                return


def _per_request(
    k: Any, slug: str, numbers: list[int], idle_share: float
) -> dict[str, float | None]:
    """Server CPU of a page open, of a fetch of the live block (what each watcher paid per
    burst of events before blocks were pushed, decision 0044), and of a block stream opened
    to read its first block (the stream's request, a feed's rendering and its write), one at
    a time on finished builds no one watched (less the idle share): a figure the machine's
    load disturbs less than a run's. The server keeps rendered live blocks (decision 0039),
    so the builds are split in three: the first third's pages are opened (their blocks
    rendered); the second third's live blocks are fetched twice, rendered the first time,
    from the cache the second; the last third's block streams are opened."""
    costs: dict[str, float | None] = {}
    web = web_sign_in(k.url)
    live = {"HX-Request": "true", "HX-Target": "build_live"}
    third = len(numbers) // 3
    try:
        passes = [
            ("page_open", numbers[:third], {}),
            ("live_block", numbers[third : 2 * third], live),
            ("live_block_cached", numbers[third : 2 * third], live),
            ("block_stream_first_block", numbers[2 * third :], None),
        ]
        for kind, some, headers in passes:
            if not some:  # fewer than three builds (`--jobs 10`): not measured
                costs[f"server_cpu_ms_per_{kind}"] = None
                continue
            before, started = cpu_seconds(k.server.pid), time.monotonic()
            for number in some:
                path = f"/{ORG}/{slug}/builds/{number}"
                if headers is None:
                    _first_block(web, f"{path}/live")
                    continue
                response = web.get(path, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{kind} of build {number}: {response.status_code}")
            cpu = cpu_seconds(k.server.pid) - before - idle_share * (time.monotonic() - started)
            costs[f"server_cpu_ms_per_{kind}"] = round(cpu * 1000 / len(some), 1)
    finally:
        web.close()
    return costs


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(run[key] for run in runs)), 2)


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole > 0 else None


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--agents", type=int, default=4, help="workers of the agent process")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in each run")
    parser.add_argument("--jobs-per-build", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="watched runs, each between two runs without watchers (2: A W A W A)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy (pip install py-spy) during each run, into DIR",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="before the rounds, a run whose watchers only open the pages: the cost of "
        "the page opens and of the block streams",
    )
    parser.add_argument(
        "--log-streams", type=int, default=50, help="log followers in the watched runs (0: none)"
    )
    parser.add_argument("--printers", type=int, default=5, help="printing jobs at once")
    parser.add_argument("--printer-lines", type=int, default=40, help="lines a printer prints")
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=60,
        help="idle dispatch samples without watchers and as many with (0: none)",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    per_build = max(args.jobs_per_build, 1)
    builds = max(args.jobs // per_build, 1)
    jobs = builds * per_build
    rounds = max(args.rounds, 1)
    alone: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    with (
        # 50 sign-ins from one address within a minute: the sign-in limit is off.
        bench_server(args.backend, web=True, KITELINE_LOGIN_ATTEMPTS_PER_MINUTE="0") as (url, k),
        k.client() as client,
    ):
        slug = create_pipeline(client, "Batch", "steps:\n" + "  - command: 'true'\n" * per_build)
        idle_step = "steps:\n  - command: 'true'\n    agents:\n      queue: idle\n"
        idle_slugs = [create_pipeline(client, name, idle_step) for name in ("Idle", "Idle W")]
        per_block = -(-args.latency_samples // rounds)  # after each run but the last
        printer_count = args.printers if args.log_streams > 0 else 0
        printers = Printers(k, printer_pipeline(client, args.printer_lines), printer_count)
        followers = Followers(k.url, printers, args.log_streams)
        with (
            agents(k, args.agents),
            agents(k, printer_count, PRINTER_QUEUE) if printer_count else nullcontext(),
            agents(k, 1, "idle"),
        ):
            time.sleep(2)  # let every agent register and start long-polling
            watchers = Watchers(k.url, slug, args.watchers)
            watchers.start()  # signed in once: sign-ins are no part of any run
            if printer_count:
                printers.start()
                printers.wait_running()
                followers.start()  # signed in once too
                followers.begin()
            # Watched, to fill the caches of both paths (compiled statements and templates).
            warm = max(builds // 5, 1)
            _run(k, client, slug, warm, warm * per_build, watchers)
            if printer_count:
                followers.end()
                followers.reset()
            watchers.tally.events = watchers.tally.pages = 0  # the runs' own from here
            # What the server spends with nothing to do (the agents' long polls, its sweeps;
            # the printers' chunks): a run that takes longer pays more of it, whatever it did
            # for the jobs.
            idle_share = _idle_share(k)
            partial: dict[str, Any] = {}
            for mode in MODES[:-1] if args.split else ():
                part = Watchers(k.url, slug, args.watchers, mode)
                part.start()
                progress(f"web-watchers ({args.backend}): {jobs} jobs, watchers: {mode} only")
                try:
                    partial[mode] = _run(k, client, slug, builds, jobs, part, args.profile, mode)
                finally:
                    part.stop()
                progress(f"{mode}: {_shown(partial[mode])}")
            try:
                for index in range(2 * rounds + 1):
                    with_watchers = index % 2 == 1
                    name = f"{'watched' if with_watchers else 'alone'}-{index // 2 + 1}"
                    progress(f"web-watchers ({args.backend}): {jobs} jobs, {name}")
                    if with_watchers and printer_count:
                        followers.begin()
                    run = _run(
                        k,
                        client,
                        slug,
                        builds,
                        jobs,
                        watchers if with_watchers else None,
                        args.profile,
                        name,
                    )
                    (watched if with_watchers else alone).append(run)
                    progress(f"{name}: {_shown(run)}")
                    if index < 2 * rounds:
                        _latency_samples(
                            client,
                            idle_slugs[with_watchers],
                            per_block,
                            watchers if with_watchers else None,
                        )
                    if with_watchers and printer_count:
                        followers.end()
                followed = followers.counts()  # the runs' (at rest's come apart)
                at_rest = _streams_at_rest(k, followers, idle_share) if printer_count else {}
            finally:
                watchers.stop()
                if printer_count:
                    printers.stop()
                    followers.close()
            numbers = [number for run in alone for number in run["numbers"]]
            quiet_share = _idle_share(k) if printer_count else idle_share  # printers stopped
            per_request = _per_request(k, slug, numbers, quiet_share)
            if printer_count:
                per_request.update(request_costs(k, printers, quiet_share))
        latency = (
            {
                "no_watchers": _idle_latency(url, idle_slugs[0]),
                "with_watchers_and_log_streams": _idle_latency(url, idle_slugs[1]),
            }
            if per_block
            else None
        )
        info = database_info(url)
    tally = watchers.tally
    for run in (*alone, *watched, *partial.values()):
        del run["numbers"]
        # Less what the same time idle would have cost.
        run["server_cpu_ms_per_job_less_idle"] = round(
            run["server_cpu_ms_per_job"] - idle_share * run["elapsed_s"] * 1000 / jobs, 2
        )
    alone_jps, watched_jps = _median(alone, "jobs_per_second"), _median(watched, "jobs_per_second")
    cpu_alone = _median(alone, "server_cpu_ms_per_job")
    cpu_extra = _median(watched, "server_cpu_ms_per_job") - cpu_alone
    net_alone = _median(alone, "server_cpu_ms_per_job_less_idle")
    net_extra = _median(watched, "server_cpu_ms_per_job_less_idle") - net_alone
    # Each watched run against the two runs without watchers around it.
    pairs = []
    for i, run in enumerate(watched):
        around = (alone[i], alone[i + 1])
        jps = statistics.mean(a["jobs_per_second"] for a in around)
        cpu = statistics.mean(a["server_cpu_ms_per_job"] for a in around)
        extra = run["server_cpu_ms_per_job"] - cpu
        pairs.append(
            {
                "cost_percent": round(100 * (1 - run["jobs_per_second"] / jps), 1),
                "extra_server_cpu_ms_per_job": round(extra, 2),
                "extra_server_cpu_percent": _percent(extra, cpu),
            }
        )

    def pair_median(key: str) -> float | None:
        values = [pair[key] for pair in pairs if pair[key] is not None]
        return round(statistics.median(values), 2 if key.endswith("job") else 1) if values else None

    page_open = per_request.get("server_cpu_ms_per_page_open")
    result: dict[str, Any] = {
        "benchmark": "web-watchers",
        "backend": args.backend,
        **info,
        "agents": args.agents,
        "watchers": args.watchers,
        "jobs_per_build": per_build,
        "jobs_per_run": jobs,
        "rounds": rounds,
        "no_watchers_runs": alone,
        "with_watchers_runs": watched,
        # The medians of the runs.
        "no_watchers": {
            "jobs_per_second": alone_jps,
            "server_cpu_ms_per_job": round(cpu_alone, 2),
        },
        "with_watchers": {
            "jobs_per_second": watched_jps,
            "server_cpu_ms_per_job": round(_median(watched, "server_cpu_ms_per_job"), 2),
        },
        # Each watched run against its neighbours, and the medians of that: the figures.
        "pairs": pairs,
        "throughput_cost_percent": pair_median("cost_percent"),
        "extra_server_cpu_ms_per_job": pair_median("extra_server_cpu_ms_per_job"),
        "extra_server_cpu_percent": pair_median("extra_server_cpu_percent"),
        # The same from the medians of all runs (moved by a drift of the machine's load).
        "throughput_cost_percent_from_medians": round(100 * (1 - watched_jps / alone_jps), 1),
        "extra_server_cpu_ms_per_job_from_medians": round(cpu_extra, 2),
        "server_idle_cpu_share": round(idle_share, 3),
        "extra_server_cpu_percent_less_idle": _percent(net_extra, net_alone),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "live_blocks_received": tally.events,
        "build_pages_opened": tally.pages,
        **per_request,
        # What the watchers' page opens cost at that price, per watched job.
        "attributed_cpu_ms_per_job": {
            "page_opens": round(tally.pages * page_open / (jobs * rounds), 2)
            if page_open is not None
            else None,
        },
        "watcher_failures": len(tally.failures),
        "log_streams": args.log_streams if printer_count else 0,
        "printers": printer_count,
        "printer_builds": printers.created,
        **followed,
        **at_rest,
        "idle_dispatch_latency": latency,
    }
    if partial:
        # Extra server CPU per job of each part: the pages, the block streams.
        pages = partial["pages"]["server_cpu_ms_per_job"] - cpu_alone
        result["split_runs"] = partial
        result["extra_cpu_ms_per_job_split"] = {
            "page_opens": round(pages, 2),
            "block_streams": round(cpu_extra - pages, 2),
        }
    if tally.failures:
        result["first_watcher_failure"] = tally.failures[0]
    if followers.tally.failures:
        result["first_log_follower_failure"] = followers.tally.failures[0]
    emit(result)


if __name__ == "__main__":
    main()
