"""The Markdown table of a run: each measure beside its target, Kiteline beside Buildbot.

The ratio column says how many times better Kiteline did than Buildbot (throughput divided by
throughput, latency by latency inverted), so above 1 means Kiteline was better.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str, str]
MISSING = "—"


def _by_run(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {result.get("run", result["benchmark"]): result for result in results}


def _ok(met: bool | None) -> str:
    return MISSING if met is None else ("yes" if met else "**no**")


def _why_missing(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not run"
    return str(result.get("skipped") or result.get("error") or "not run")


def _not_measured(measure: str, target: str, result: dict[str, Any] | None) -> Row:
    return (measure, target, _why_missing(result), MISSING, MISSING, MISSING)


def _measured(result: dict[str, Any] | None) -> bool:
    return result is not None and "skipped" not in result and "error" not in result


def _latency(result: dict[str, Any]) -> str:
    latency = result["idle_dispatch_latency"]
    return (
        f"p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms, "
        f"p99 {latency['p99_ms']:.0f} ms ({latency['samples']} samples)"
    )


def _label(result: dict[str, Any] | None, default: str) -> str:
    if not _measured(result):
        return default
    assert result is not None
    return "SQLite" if result["backend"] == "sqlite" else "PostgreSQL"


def _latency_row(kiteline: dict[str, Any] | None, buildbot: dict[str, Any] | None) -> Row:
    measure = f"dispatch latency, idle agent ({_label(kiteline, 'SQLite')})"
    target = "p50 ≤ 50 ms, p99 ≤ 250 ms"
    if not _measured(kiteline):
        return _not_measured(measure, target, kiteline)
    assert kiteline is not None
    latency = kiteline["idle_dispatch_latency"]
    peer = ratio = MISSING
    if _measured(buildbot):
        assert buildbot is not None
        observed = buildbot["idle_latency_client_observed"]
        own = buildbot["idle_latency_own_data"]
        peer = (
            f"p50 {observed['p50_ms']:.0f} ms, p99 {observed['p99_ms']:.0f} ms observed by "
            f"polling; own data p50 {own['p50_ms'] / 1000:.0f} s, p99 {own['p99_ms'] / 1000:.0f} s"
        )
        ratio = f"{observed['p50_ms'] / latency['p50_ms']:.1f}x (p50)"
    elif buildbot is not None:
        peer = _why_missing(buildbot)
    met = latency["p50_ms"] <= 50 and latency["p99_ms"] <= 250
    return (measure, target, _latency(kiteline), peer, ratio, _ok(met))


def _throughput_row(
    kiteline: dict[str, Any] | None, buildbot: dict[str, Any] | None, backend: str, shape: str
) -> Row:
    label = _label(kiteline, backend)
    if _measured(kiteline):
        assert kiteline is not None
        per_build = kiteline["jobs_per_build"]
        shape = "one job" if per_build == 1 else f"{per_build} jobs"
    measure = f"trivial jobs end to end, 4 agents, {shape} per build ({label})"
    target = "≥ 10x Buildbot"
    if not _measured(kiteline):
        return _not_measured(measure, target, kiteline)
    assert kiteline is not None
    phases = kiteline.get("median_ms_under_load")
    detail = ""
    if phases:
        detail = (
            f"; per job: accepted → started {phases['accepted_to_started']:.0f} ms, "
            f"started → finished {phases['started_to_finished']:.0f} ms, agent's finish → next "
            f"accept {phases['agent_finished_to_next_accepted']:.0f} ms (medians)"
        )
    cpu = kiteline.get("cpu_ms_per_job")
    if cpu:
        detail += (
            f"; CPU per job: server {cpu['server']:.0f} ms, agent with its job processes "
            f"{cpu['agent']:.0f} ms"
        )
    peer = ratio = MISSING
    met: bool | None = None
    if _measured(buildbot):
        assert buildbot is not None
        asked = buildbot.get("builds_asked", buildbot["builds"])
        done = f"{buildbot['builds']} builds" + (
            f" of {asked}, the rest cut by the time budget" if buildbot["builds"] < asked else ""
        )
        peer = f"{buildbot['builds_per_second']} builds/s ({done})"
        times = kiteline["jobs_per_second"] / buildbot["builds_per_second"]
        ratio = f"{times:.1f}x"
        met = times >= 10
    elif buildbot is not None:
        peer = _why_missing(buildbot)
    mine = f"{kiteline['jobs_per_second']} jobs/s ({kiteline['jobs']} jobs){detail}"
    return (measure, target, mine, peer, ratio, _ok(met))


def _server_cpu(load: dict[str, Any]) -> str:
    cpu = load.get("server_cpu_ms_per_request")
    return f", server CPU {cpu:.1f} ms per request" if cpu is not None else ""


def _list_load(load: dict[str, Any]) -> str:
    """One load of the build-list benchmark: rate, p50, server CPU, failures."""
    failed = f", {load['failed']} failed" if load.get("failed") else ""
    return f"{load['req_per_s']} req/s, p50 {load['p50_ms']:.0f} ms{_server_cpu(load)}{failed}"


def _rest_rows(rest: dict[str, Any] | None) -> list[Row]:
    if not _measured(rest):
        return [_not_measured("list builds, per_page=100", "≥ 500 req/s", rest)]
    assert rest is not None
    rows: list[Row] = []
    for clients in (1, 32):
        cells = []
        best = 0.0
        for size, result in rest["results"].items():
            load = result[f"clients_{clients}"]
            best = max(best, load["req_per_s"])
            cells.append(f"{int(size):,} builds: {_list_load(load)}")
        rows.append(
            (
                f"list builds, per_page=100, {clients} "
                f"{'connection' if rest.get('client') == 'wrk' else 'client'}"
                f"{'s' if clients > 1 else ''} ({rest.get('client', 'httpx')})",
                "≥ 500 req/s",
                "; ".join(cells),
                MISSING,
                MISSING,
                _ok(best >= 500),
            )
        )
    sizes = list(rest["results"])
    rows.append(
        (
            f"p50 at {int(sizes[-1]):,} builds vs {int(sizes[0]):,} (1 client)",
            "≤ 1.5x",
            f"{rest['p50_growth']}x (seeding {int(sizes[-1]):,} took "
            f"{sum(r['seed_s'] for r in rest['results'].values()):.0f} s)",
            MISSING,
            MISSING,
            _ok(rest["p50_growth"] <= 1.5),
        )
    )
    return rows


def _graphql_rows(graphql: dict[str, Any] | None) -> list[Row]:
    if not _measured(graphql):
        return [_not_measured("GraphQL: pipelines → builds → jobs", "≥ 200 req/s", graphql)]
    assert graphql is not None
    counts = graphql["statements_per_request"]
    small, large = counts["small"], counts["large"]
    loads = []
    for clients in (1, 8):
        load = graphql[f"clients_{clients}"]
        failed = f", {load['failed']} failed" if load.get("failed") else ""
        loads.append(
            f"{clients} client{'s' if clients > 1 else ''}: {load['req_per_s']} req/s, "
            f"p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms{_server_cpu(load)}"
            f"{failed}"
        )
    return [
        (
            "GraphQL: SQL statements per request",
            "independent of counts",
            f"{small['statements']} for 1 pipeline x 1 build x 1 job; {large['statements']} for "
            f"{large['pipelines']} x {large['builds'] // large['pipelines']} x "
            f"{large['jobs'] // large['builds']}",
            MISSING,
            MISSING,
            _ok(graphql["statements_independent_of_counts"]),
        ),
        (
            f"GraphQL: {graphql['shape']} ({graphql['response_bytes'] // 1024} KiB)",
            "≥ 200 req/s",
            "; ".join(loads),
            MISSING,
            MISSING,
            _ok(max(graphql[f"clients_{c}"]["req_per_s"] for c in (1, 8)) >= 200),
        ),
    ]


def _logs_rows(logs: dict[str, Any] | None) -> list[Row]:
    if not _measured(logs):
        return [_not_measured("log ingestion", "≥ 50 MB/s", logs)]
    assert logs is not None
    by_range = logs["range"]
    ranged = (
        f"last MiB by range {by_range['last_mib_s']} s"
        if by_range["supported"]
        else "Range not supported (the whole log comes back)"
    )
    return [
        (
            "log ingestion (gzip chunks via the agent API)",
            "≥ 50 MB/s",
            f"{logs['ingest_mb_per_s']} MB/s ({logs['chunks']} chunks of "
            f"{logs['chunk_bytes'] // 1024} KiB, {logs['uploads_in_flight']} in flight)",
            MISSING,
            MISSING,
            _ok(logs["ingest_mb_per_s"] >= 50),
        ),
        (
            f"fetch a {logs['log_mib']} MB log",
            MISSING,
            f"JSON {logs['fetch_json_s']} s, .txt {logs['fetch_txt_s']} s; {ranged}",
            MISSING,
            MISSING,
            MISSING,
        ),
    ]


def _web_build_page_rows(web: dict[str, Any] | None) -> list[Row]:
    if not _measured(web):
        return [_not_measured("web UI: build page, 500 jobs", "p50 ≤ 100 ms", web)]
    assert web is not None
    page, live = web["page"], web["live_block"]
    return [
        (
            f"web UI: build page, {web['jobs']} jobs, server-rendered ({_label(web, 'SQLite')})",
            "p50 ≤ 100 ms",
            f"page p50 {page['p50_ms']:.0f} ms, p95 {page['p95_ms']:.0f} ms, "
            f"server CPU {page['server_cpu_ms_per_request']} ms per request, "
            f"{page['bytes'] // 1024} KiB; live refresh p50 {live['p50_ms']:.0f} ms",
            MISSING,
            MISSING,
            _ok(page["p50_ms"] <= 100),
        )
    ]


def _web_pipeline_page_rows(web: dict[str, Any] | None) -> list[Row]:
    if not _measured(web):
        return [_not_measured("web UI: pipeline page, 10,000 builds", MISSING, web)]
    assert web is not None
    page, deep, live = web["page"], web["deep_page"], web["live_block"]
    return [
        (
            f"web UI: pipeline page, {web['builds']:,} builds, "
            f"{web['rows_per_page']} a page ({_label(web, 'SQLite')})",
            MISSING,
            f"page p50 {page['p50_ms']:.0f} ms, server CPU {page['server_cpu_ms_per_request']} ms "
            f"per request; page {web['deep_page_number']} p50 {deep['p50_ms']:.0f} ms; "
            f"live refresh p50 {live['p50_ms']:.0f} ms",
            MISSING,
            MISSING,
            MISSING,
        )
    ]


def _log_streams(web: dict[str, Any]) -> str:
    """What the log followers did (bench/log_streams.py), or nothing without them."""
    if not web.get("log_streams"):
        return ""
    return (
        f"; {web['log_streams']} log streams on {web['printers']} printing jobs: "
        f"{web['log_viewers_loaded']} viewers loaded, {web['log_streams_opened']} streams opened, "
        f"{web['log_sizes_streamed']} sizes streamed, {web['log_windows_fetched']} windows "
        f"fetched ({web['log_lines_received']} lines), {web['logs_followed_to_the_end']} logs "
        "followed to the end"
    )


def _web_watchers_rows(web: dict[str, Any] | None) -> list[Row]:
    measure = "web UI: 50 build pages watching and 50 log streams, cost to agent API throughput"
    if not _measured(web):
        return [
            _not_measured(measure, "≤ 10 %", web),
            _not_measured(_WATCHED_LATENCY, _ISSUE_18_LATENCY, web),
        ]
    assert web is not None
    alone, watched = web["no_watchers"], web["with_watchers"]
    if "no_watchers_runs" in web:  # alternating runs: medians (bench/web_watchers.py)
        runs = (
            "median of each watched run against the runs alone around it; "
            f"median of {len(web['no_watchers_runs'])} runs alone "
            f"{alone['jobs_per_second']} jobs/s ("
            + " / ".join(str(run["jobs_per_second"]) for run in web["no_watchers_runs"])
            + f"), of {len(web['with_watchers_runs'])} watched {watched['jobs_per_second']} ("
            + " / ".join(str(run["jobs_per_second"]) for run in web["with_watchers_runs"])
            + ")"
        )
    else:  # one watched run between two alone (before 2026-12-08)
        again = web["no_watchers_again"]
        runs = (
            f"{alone['jobs_per_second']} / {again['jobs_per_second']} jobs/s alone, "
            f"{watched['jobs_per_second']} jobs/s watched"
        )
    streams = f" and {web['log_streams']} log streams" if web.get("log_streams") else ""
    rows: list[Row] = [
        (
            f"web UI: {web['watchers']} build pages watching{streams}, cost to agent API "
            f"throughput ({web['agents']} agents, {_label(web, 'SQLite')})",
            "≤ 10 %",
            f"{web['throughput_cost_percent']} %: {runs}; extra server CPU "
            f"{web['extra_server_cpu_percent']} % ({web['extra_server_cpu_ms_per_job']} ms per "
            f"job); {web['build_pages_opened']} pages opened, {web['live_blocks_received']} live "
            f"blocks pushed{_log_streams(web)}",
            MISSING,
            MISSING,
            _ok(web["throughput_cost_percent"] <= 10),
        )
    ]
    latency = web.get("idle_dispatch_latency")
    if latency:
        watched, alone = latency["with_watchers_and_log_streams"], latency["no_watchers"]
        rows.append(
            (
                f"dispatch latency, idle agent, {web['watchers']} build pages and "
                f"{web['log_streams']} log streams connected ({_label(web, 'SQLite')})",
                _ISSUE_18_LATENCY,
                f"{_summary(watched)}; without them {_summary(alone)}",
                MISSING,
                MISSING,
                _ok(_issue_18_latency_met(watched)),
            )
        )
    return rows


_WATCHED_LATENCY = "dispatch latency, idle agent, 50 build pages and 50 log streams connected"
_ISSUE_18_LATENCY = "p50 ≤ 25 ms, p99 ≤ 100 ms"


def _summary(latency: dict[str, Any]) -> str:
    return (
        f"p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms, "
        f"p99 {latency['p99_ms']:.0f} ms ({latency['samples']} samples)"
    )


def _issue_18_latency_met(latency: dict[str, Any]) -> bool:
    return bool(latency["p50_ms"] <= 25 and latency["p99_ms"] <= 100)


def _dispatch_run(result: dict[str, Any]) -> str:
    cpu = result["cpu_ms_per_job"]["server"]
    return (
        f"{result['workers']} process{'es' if result['workers'] > 1 else ''} "
        f"{result['jobs_per_second']} jobs/s (server CPU {cpu:.0f} ms per job, load average "
        f"{result['load_average'][0] if 'load_average' in result else MISSING})"
    )


def _workers_rows(runs: dict[str, dict[str, Any]]) -> list[Row]:
    """`kiteline server --workers` 1 and 2 on PostgreSQL (issue 18: both cores used where it
    pays): trivial jobs of both shapes, idle dispatch, build lists."""
    target = "the numbers for 1 and 2"
    rows: list[Row] = []
    shapes = (
        ("10 jobs", "dispatch-postgresql", "dispatch-postgresql-workers-2"),
        (
            "one job",
            "dispatch-postgresql-single-workers-1",
            "dispatch-postgresql-single-workers-2",
        ),
    )
    for shape, one_name, two_name in shapes:
        measure = f"trivial jobs, 4 agents, {shape} per build, server --workers 1 vs 2 (PostgreSQL)"
        one, two = runs.get(one_name), runs.get(two_name)
        if not (_measured(one) and _measured(two)):
            rows.append(_not_measured(measure, target, two if _measured(one) else one))
            continue
        assert one is not None and two is not None
        times = two["jobs_per_second"] / one["jobs_per_second"]
        rows.append(
            (
                measure,
                target,
                f"{_dispatch_run(one)}; {_dispatch_run(two)}; {times:.2f}x",
                MISSING,
                MISSING,
                MISSING,
            )
        )
    two = runs.get("dispatch-postgresql-workers-2")
    measure = "dispatch latency, idle agent, server --workers 2 (PostgreSQL)"
    if _measured(two):
        assert two is not None
        latency = two["idle_dispatch_latency"]
        rows.append(
            (
                measure,
                _ISSUE_18_LATENCY,
                _summary(latency),
                MISSING,
                MISSING,
                _ok(_issue_18_latency_met(latency)),
            )
        )
    else:
        rows.append(_not_measured(measure, _ISSUE_18_LATENCY, two))
    rows.append(_rest_workers_row(runs))
    return rows


def _rest_workers_row(runs: dict[str, dict[str, Any]]) -> Row:
    measure = "list builds, per_page=100, server --workers 1 vs 2 (PostgreSQL)"
    one, two = runs.get("rest-postgresql-workers-1"), runs.get("rest-postgresql-workers-2")
    if not (_measured(one) and _measured(two)):
        return _not_measured(measure, "≥ 500 req/s", two if _measured(one) else one)
    assert one is not None and two is not None
    cells, best = [], 0.0
    for rest in (one, two):
        size, result = next(iter(rest["results"].items()))
        loads = []
        for clients in (1, 32):
            load = result[f"clients_{clients}"]
            best = max(best, load["req_per_s"])
            loads.append(f"{clients} conn. {_list_load(load)}")
        cells.append(
            f"{rest['workers']} process{'es' if rest['workers'] > 1 else ''}, "
            f"{int(size):,} builds: " + "; ".join(loads)
        )
    return (measure, "≥ 500 req/s", " / ".join(cells), MISSING, MISSING, _ok(best >= 500))


def _memory_rows(
    dispatch: dict[str, Any] | None, buildbot: dict[str, Any] | None, logs: dict[str, Any] | None
) -> list[Row]:
    if not _measured(dispatch):
        return [_not_measured("peak RSS", "server ≤ 150 MB, agent ≤ 60 MB", dispatch)]
    assert dispatch is not None
    idle, loaded = dispatch["peak_rss_mb_idle"], dispatch["peak_rss_mb_under_load"]
    peer_server = peer_agent = MISSING
    if _measured(buildbot):
        assert buildbot is not None
        b_idle, b_loaded = buildbot["peak_rss_mb_idle"], buildbot["peak_rss_mb_under_load"]
        peer_server = f"master {b_idle['master']} / {b_loaded['master']} MB"
        peer_agent = (
            f"one worker {b_idle['worker']} / {b_loaded['worker']} MB "
            f"(a process per worker: {buildbot['workers']} of them)"
        )
    rows: list[Row] = [
        (
            "server peak RSS, idle / under dispatch load",
            "≤ 150 MB",
            f"{idle['server']} / {loaded['server']} MB",
            peer_server,
            MISSING,
            _ok(loaded["server"] <= 150),
        ),
        (
            f"agent peak RSS, idle / under load ({dispatch['agents']} workers, one process)",
            "≤ 60 MB",
            f"{idle['agent']} / {loaded['agent']} MB",
            peer_agent,
            MISSING,
            _ok(loaded["agent"] <= 60),
        ),
    ]
    if _measured(logs):
        assert logs is not None
        rows.append(
            (
                f"server peak RSS after serving a {logs['log_mib']} MB log",
                "≤ 150 MB",
                f"{logs['server_rss_mb']['peak_after_fetches']} MB",
                MISSING,
                MISSING,
                _ok(logs["server_rss_mb"]["peak_after_fetches"] <= 150),
            )
        )
    return rows


def _s3_rows(s3: dict[str, Any] | None) -> list[Row]:
    measure = "artifact throughput with S3 (moto), % of a direct boto3 transfer"
    target = "≥ 80 %"
    if not _measured(s3):
        return [_not_measured(measure, target, s3)]
    assert s3 is not None
    rows: list[Row] = []
    for way in ("upload", "download"):
        ratio = s3[f"{way}_percent_of_boto3"]
        rows.append(
            (
                f"artifact {way} through Kiteline vs boto3, S3 (moto), "
                f"{s3['files']} x {s3['mib_per_file']} MiB",
                target,
                f"{s3[f'kiteline_{way}']['mib_per_s']} MiB/s vs "
                f"{s3[f'boto3_{way}']['mib_per_s']} MiB/s: {ratio['wall']} % by wall time, "
                f"{ratio['cpu']} % by CPU of every process",
                MISSING,
                MISSING,
                _ok(ratio["cpu"] >= 80),
            )
        )
    return rows


def _replicas_rows(replicas: dict[str, Any] | None) -> list[Row]:
    latency_measure = "dispatch latency, idle agent, job created through the other replica"
    throughput_measure = "trivial jobs, one server vs two replicas, same agents (PostgreSQL)"
    if not _measured(replicas):
        return [
            _not_measured(latency_measure, "p50 ≤ 50 ms", replicas),
            _not_measured(throughput_measure, "two ≥ one", replicas),
        ]
    assert replicas is not None
    other = replicas["idle_dispatch_latency_other_replica"]
    same = replicas["idle_dispatch_latency_same_replica"]
    one, two = replicas["one_server"], replicas["two_replicas"]

    def run(label: str, result: dict[str, Any]) -> str:
        return (
            f"{label} {result['jobs_per_second']} jobs/s, servers' CPU "
            f"{result['cpu_ms_per_job']['servers']} ms per job (load average "
            f"{result['load_average_1m'][-1]})"
        )

    return [
        (
            latency_measure,
            "p50 ≤ 50 ms",
            f"p50 {other['p50_ms']:.0f} ms, p95 {other['p95_ms']:.0f} ms, p99 "
            f"{other['p99_ms']:.0f} ms ({other['samples']} samples); created through the "
            f"agent's own replica p50 {same['p50_ms']:.0f} ms (load average "
            f"{replicas['latency_load_average_1m'][-1]})",
            MISSING,
            MISSING,
            _ok(other["p50_ms"] <= 50),
        ),
        (
            f"{throughput_measure}, {replicas['agents']} agents, {replicas['cpus']} cores",
            "two ≥ one",
            f"{run('one server', one)}; {run('two replicas', two)}; "
            f"{replicas['throughput_ratio']}x",
            MISSING,
            MISSING,
            _ok(replicas["throughput_ratio"] >= 1),
        ),
    ]


def render(results: list[dict[str, Any]]) -> str:
    runs = _by_run(results)
    buildbot = runs.get("peer-buildbot")
    rows: list[Row] = [
        _latency_row(runs.get("dispatch-sqlite"), buildbot),
        _throughput_row(runs.get("dispatch-sqlite"), buildbot, "SQLite", "10 jobs"),
        _throughput_row(runs.get("dispatch-sqlite-single"), buildbot, "SQLite", "one job"),
        _latency_row(runs.get("dispatch-postgresql"), buildbot),
        _throughput_row(runs.get("dispatch-postgresql"), buildbot, "PostgreSQL", "10 jobs"),
        *_replicas_rows(runs.get("replicas")),
        *_workers_rows(runs),
        *_rest_rows(runs.get("rest")),
        *_graphql_rows(runs.get("graphql")),
        *_logs_rows(runs.get("logs")),
        *_web_build_page_rows(runs.get("web-build-page")),
        *_web_pipeline_page_rows(runs.get("web-pipeline-page")),
        *_web_watchers_rows(runs.get("web-watchers")),
        *_s3_rows(runs.get("s3-artifacts")),
        *_memory_rows(runs.get("dispatch-sqlite"), buildbot, runs.get("logs")),
    ]
    header: Row = ("measure", "target", "Kiteline", "Buildbot", "ratio", "met")
    lines = [_line(header), _line(("---",) * len(header))]
    lines += [_line(row) for row in rows]
    return "\n".join(lines)


def _line(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"
