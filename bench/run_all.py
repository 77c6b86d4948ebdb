"""Run every benchmark, each as its own process within a time budget, and print the table.

    make bench                                  (the same as: python bench/run_all.py)
    python bench/run_all.py --only dispatch-sqlite,logs
    python bench/run_all.py --quick             (small sizes: a smoke run of the harness)
    python bench/run_all.py --table             (print the table of the last run again)

The JSON lines go to bench/results/latest.jsonl (the first line describes the machine) and the
Markdown table to stdout and bench/results/latest.md; a run of `--only` or `--quick` writes
partial.jsonl and partial.md instead, so that it never overwrites the last full run. The
default sizes fit in 20 minutes on a 2-core machine. PostgreSQL runs use
KITELINE_BENCH_DATABASE_URL when set, else a throwaway cluster from Debian's server binaries
when installed, else they are skipped (and say so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import postgresql_binaries, progress, throwaway_postgresql
from table import render

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TOTAL_BUDGET_S = 19 * 60
GRACE_S = 45  # after SIGTERM, for a benchmark to stop its servers and agents


@dataclass(frozen=True)
class Benchmark:
    name: str
    argv: list[str]
    quick_argv: list[str]
    budget_s: float
    postgresql: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _python(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / script), *args]


BENCHMARKS = [
    Benchmark(
        "dispatch-sqlite",
        _python("dispatch.py", "--backend", "sqlite", "--agents", "4", "--jobs", "1000"),
        _python("dispatch.py", "--jobs", "100", "--latency-samples", "10"),
        budget_s=300,
    ),
    Benchmark(
        "dispatch-sqlite-single",
        _python("dispatch.py", "--jobs", "1000", "--jobs-per-build", "1", "--latency-samples", "5"),
        _python("dispatch.py", "--jobs", "100", "--jobs-per-build", "1", "--latency-samples", "5"),
        budget_s=300,
    ),
    Benchmark(
        "peer-buildbot",
        [
            "bash",
            str(BENCH / "peer_buildbot.sh"),
            *("--workers", "4", "--builds", "1000", "--latency-samples", "20"),
            *("--timeout", "330"),  # for the builds: past it, the rate of those done by then
        ],
        ["bash", str(BENCH / "peer_buildbot.sh"), "--builds", "100", "--latency-samples", "10"],
        budget_s=480,
    ),
    Benchmark(
        "dispatch-postgresql",
        _python("dispatch.py", "--backend", "postgresql", "--agents", "4", "--jobs", "1000"),
        _python(
            "dispatch.py", "--backend", "postgresql", "--jobs", "100", "--latency-samples", "10"
        ),
        budget_s=300,
        postgresql=True,
    ),
    # `kiteline server --workers 2` against the run above (one process), the same shape; then
    # one job per build (more server CPU per job) with 1 and 2 processes back to back.
    Benchmark(
        "dispatch-postgresql-workers-2",
        _python(
            "dispatch.py",
            *("--backend", "postgresql", "--agents", "4", "--jobs", "1000"),
            *("--workers", "2", "--profile-builds", "0"),
        ),
        _python(
            "dispatch.py",
            *("--backend", "postgresql", "--jobs", "100", "--latency-samples", "10"),
            *("--workers", "2", "--profile-builds", "0"),
        ),
        budget_s=240,
        postgresql=True,
    ),
    *(
        Benchmark(
            f"dispatch-postgresql-single-workers-{workers}",
            _python(
                "dispatch.py",
                *("--backend", "postgresql", "--jobs", "1000", "--jobs-per-build", "1"),
                *("--latency-samples", "5", "--workers", str(workers), "--profile-builds", "0"),
            ),
            _python(
                "dispatch.py",
                *("--backend", "postgresql", "--jobs", "100", "--jobs-per-build", "1"),
                *("--latency-samples", "5", "--workers", str(workers), "--profile-builds", "0"),
            ),
            budget_s=240,
            postgresql=True,
        )
        for workers in (1, 2)
    ),
    Benchmark(
        "replicas",
        _python("replicas.py", "--agents", "4", "--jobs", "500", "--latency-samples", "50"),
        _python("replicas.py", "--jobs", "50", "--latency-samples", "5"),
        budget_s=300,
        postgresql=True,
    ),
    Benchmark(
        "graphql",
        _python("graphql_query.py", "--backend", "sqlite"),
        _python("graphql_query.py", "--jobs-per-build", "2", "--duration", "5"),
        budget_s=180,
    ),
    Benchmark(
        "logs",
        _python("logs.py", "--backend", "sqlite", "--megabytes", "50"),
        _python("logs.py", "--megabytes", "5"),
        budget_s=150,
    ),
    Benchmark(
        "log-compaction",
        _python("log_compaction.py", "--backend", "sqlite", "--megabytes", "50"),
        _python("log_compaction.py", "--megabytes", "5", "--requests", "3"),
        budget_s=240,
    ),
    Benchmark(
        "rest",
        _python("rest.py", "--backend", "sqlite", "--sizes", "10000,100000,1000000"),
        _python("rest.py", "--sizes", "1000,10000", "--requests", "64", "--duration", "5"),
        budget_s=480,
    ),
    *(
        Benchmark(
            f"rest-postgresql-workers-{workers}",
            _python(
                "rest.py", "--backend", "postgresql", "--sizes", "10000", "--workers", str(workers)
            ),
            _python(
                "rest.py",
                *("--backend", "postgresql", "--sizes", "1000", "--workers", str(workers)),
                *("--requests", "64", "--duration", "5"),
            ),
            budget_s=180,
            postgresql=True,
        )
        for workers in (1, 2)
    ),
    Benchmark(
        "web-build-page",
        _python("web_build_page.py", "--backend", "sqlite", "--jobs", "500"),
        _python("web_build_page.py", "--jobs", "100", "--requests", "10"),
        budget_s=180,
    ),
    Benchmark(
        "web-pipeline-page",
        _python("web_pipeline_page.py", "--backend", "sqlite", "--builds", "10000"),
        _python("web_pipeline_page.py", "--builds", "100", "--requests", "10"),
        budget_s=180,
    ),
    Benchmark(
        "web-pipelines-list",
        _python("web_pipelines_list.py", "--backend", "sqlite"),
        _python("web_pipelines_list.py", "--pipelines", "10", "--requests", "10"),
        budget_s=180,
    ),
    Benchmark(
        "web-log",
        _python("web_log.py", "--backend", "sqlite", "--megabytes", "50"),
        _python("web_log.py", "--megabytes", "5", "--requests", "10"),
        budget_s=180,
    ),
    Benchmark(
        "web-watchers",
        _python(
            "web_watchers.py",
            "--backend",
            "sqlite",
            "--watchers",
            "50",
            "--jobs",
            "200",
            "--rounds",
            "3",
            "--log-streams",
            "50",
        ),
        _python(
            "web_watchers.py",
            *("--watchers", "5", "--jobs", "30", "--rounds", "1"),
            *("--log-streams", "5", "--printers", "2", "--latency-samples", "6"),
        ),
        budget_s=240,
    ),
    Benchmark(
        "s3-artifacts",
        _python("s3_artifacts.py", "--backend", "sqlite", "--files", "4", "--megabytes", "16"),
        _python("s3_artifacts.py", "--files", "2", "--megabytes", "4", "--rounds", "1"),
        budget_s=240,
    ),
    Benchmark(
        "source-deliveries",
        _python("source_deliveries.py", "--backend", "sqlite", "--deliveries", "300"),
        _python("source_deliveries.py", "--deliveries", "30"),
        budget_s=120,
    ),
]


def _first_line(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    import sqlite3

    memory_kb = _first_line("/proc/meminfo", "MemTotal").split()[0]
    binaries = postgresql_binaries()
    return {
        "benchmark": "machine",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": _first_line("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(memory_kb) / 1024 / 1024, 1) if memory_kb.isdigit() else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql_binaries": str(binaries) if binaries else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(benchmark: Benchmark, argv: list[str], budget_s: float) -> dict[str, Any]:
    """One benchmark as a process: its JSON line, or what went wrong."""
    progress(f"=== {benchmark.name} (budget {budget_s:.0f}s): {' '.join(argv[1:])}")
    began = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHON": sys.executable, **benchmark.env},
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the benchmark stops what it started
        try:
            process.communicate(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
        return {"benchmark": benchmark.name, "error": f"over its budget of {budget_s:.0f}s"}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    elapsed = round(time.monotonic() - began, 1)
    lines = stdout.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        return {"benchmark": benchmark.name, "error": f"exited {process.returncode}"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"benchmark": benchmark.name, "error": f"printed no JSON: {lines[-1][:200]}"}
    result["run"] = benchmark.name
    result["wall_s"] = elapsed
    return result


@contextmanager
def postgresql_url(needed: bool) -> Iterator[str | None]:
    """A PostgreSQL server for the PostgreSQL runs: given, throwaway, or none (None)."""
    given = os.environ.get("KITELINE_BENCH_DATABASE_URL")
    if not needed:
        yield None
        return
    if given:
        yield given
        return
    if postgresql_binaries() is None:
        yield None
        return
    progress("starting a throwaway PostgreSQL cluster")
    with throwaway_postgresql() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [benchmark.name for benchmark in BENCHMARKS]
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--budget", type=float, default=TOTAL_BUDGET_S, help="seconds in all")
    parser.add_argument(
        "--results",
        type=Path,
        help="where the JSON lines go (default: latest.jsonl, partial.jsonl for --only/--quick)",
    )
    parser.add_argument("--table", action="store_true", help="only print the table of --results")
    args = parser.parse_args()
    if args.results is None:
        partial = (args.only or args.quick) and not args.table
        args.results = RESULTS / ("partial.jsonl" if partial else "latest.jsonl")
    if args.table:
        lines = args.results.read_text().splitlines()
        print(render([json.loads(line) for line in lines if line]))
        return
    chosen = args.only.split(",") if args.only else names
    unknown = set(chosen) - set(names)
    if unknown:
        raise SystemExit(f"unknown benchmarks {sorted(unknown)}; choose from {names}")

    began = time.monotonic()
    results: list[dict[str, Any]] = [machine()]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    selected = [benchmark for benchmark in BENCHMARKS if benchmark.name in chosen]
    with postgresql_url(any(benchmark.postgresql for benchmark in selected)) as pg_url:
        for benchmark in selected:
            remaining = args.budget - (time.monotonic() - began)
            if benchmark.postgresql and pg_url is None:
                results.append(
                    {
                        "benchmark": benchmark.name,
                        "skipped": "no PostgreSQL: set KITELINE_BENCH_DATABASE_URL "
                        "or install Debian's postgresql package",
                    }
                )
                continue
            if remaining < 60:
                results.append({"benchmark": benchmark.name, "skipped": "out of time"})
                continue
            if benchmark.postgresql:
                assert pg_url is not None
                benchmark = Benchmark(
                    **{**benchmark.__dict__, "env": {"KITELINE_BENCH_DATABASE_URL": pg_url}}
                )
            argv = benchmark.quick_argv if args.quick else benchmark.argv
            results.append(run(benchmark, argv, min(benchmark.budget_s, remaining)))
            progress(json.dumps(results[-1]))
            args.results.write_text("".join(json.dumps(result) + "\n" for result in results))
    results[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results[0]["total_s"] = round(time.monotonic() - began, 1)
    args.results.write_text("".join(json.dumps(result) + "\n" for result in results))
    table = render(results)
    args.results.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
