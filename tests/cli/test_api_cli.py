"""`kiteline build|job|artifact|pipeline|agent|graphql …` as real processes against a live
Kiteline with a real agent: exit statuses, `--json` objects, and effects read back over REST."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import backends, fresh_database
from tests.support.processes import kiteline_env, run_kiteline, wait_until
from tests.support.stack import ORG, Stack, stack

GREEN = """\
steps:
  - label: ":wave: greet"
    command: echo "hello from the CLI, build $$BUILDKITE_BUILD_NUMBER"
  - label: produce
    artifact_paths: "out/*"
    command: |
      mkdir -p out
      printf 'kite\\000line\\377\\n' > out/data.bin
"""
GREEN_BYTES = b"kite\x00line\xff\n"
RED = """\
steps:
  - label: doomed
    command: echo "about to fail" && exit 3
"""
# Fails on its first run, passes when retried.
FLAKY = """\
steps:
  - label: flaky
    command: test "$$BUILDKITE_RETRY_COUNT" -gt 0
"""
GATE = """\
steps:
  - block: Release?
    fields:
      - text: Version
        key: version
  - label: ship
    command: echo "shipping $(buildkite-agent meta-data get version)"
"""
AGENT = "cli-agent"


@dataclass
class Cli:
    """The `kiteline` command pointed at the stack by KITELINE_URL/TOKEN/ORG."""

    stack: Stack
    env: dict[str, str]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_kiteline(*args, env=env or self.env)

    def json(self, *args: str) -> Any:
        completed = self.run(*args, "--json")
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)


@dataclass
class Watched:
    """A pipeline made with `pipeline create` and its first build run by `build create
    --watch`."""

    pipeline: dict[str, Any]
    completed: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module", params=backends())
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    work = tmp_path_factory.mktemp(f"api-cli-{request.param}")
    with (
        fresh_database(request.param, work) as database_url,
        # An idle agent's ping is held at most this long; a stop waits for the next ping.
        stack(database_url, work, agent_ping_max_wait="2") as s,
    ):
        s.start_agent(AGENT)
        # Wide enough that table rows are never folded.
        env = kiteline_env(
            s.data_dir,
            KITELINE_URL=s.url,
            KITELINE_TOKEN=s.api_token,
            KITELINE_ORG=ORG,
            COLUMNS="240",
        )
        yield Cli(s, env)


def _create_and_watch(cli: Cli, name: str, configuration: str, *watch_args: str) -> Watched:
    config = cli.stack.work_dir / f"{name}.yml"
    config.write_text(configuration)
    pipeline = cli.json("pipeline", "create", name, "--config", str(config))
    completed = cli.run("build", "create", pipeline["slug"], "--watch", *watch_args)
    return Watched(pipeline, completed)


@pytest.fixture(scope="module")
def green(cli: Cli) -> Watched:
    return _create_and_watch(cli, "Green", GREEN, "--message", "Ship it", "--json")


@pytest.fixture(scope="module")
def red(cli: Cli) -> Watched:
    return _create_and_watch(cli, "Red", RED)


def _job(build: dict[str, Any], label: str) -> dict[str, Any]:
    (job,) = [job for job in build["jobs"] if job.get("label") == label]
    return job


def test_pipeline_create_takes_the_steps_from_a_file(green: Watched) -> None:
    assert (green.pipeline["slug"], green.pipeline["name"]) == ("green", "Green")
    assert green.pipeline["configuration"] == GREEN


def test_build_create_watch_exits_0_and_prints_the_build_when_it_passes(green: Watched) -> None:
    assert green.completed.returncode == 0, green.completed.stderr
    build = json.loads(green.completed.stdout)
    assert (build["number"], build["state"], build["message"]) == (1, "passed", "Ship it")
    assert [(job["label"], job["state"]) for job in build["jobs"]] == [
        (":wave: greet", "passed"),
        ("produce", "passed"),
    ]


def test_build_create_watch_exits_1_and_shows_the_jobs_when_it_fails(red: Watched) -> None:
    assert red.completed.returncode == 1, red.completed.stderr
    lines = red.completed.stdout.splitlines()
    assert lines[0].startswith("Created red #1")
    assert any(line.split()[:3] == ["doomed", "failed", "3"] for line in lines), lines


def test_build_list_json_gives_each_build_number_and_state(
    cli: Cli, green: Watched, red: Watched
) -> None:
    listed = cli.json("build", "list", "green")["builds"]
    assert [(build["number"], build["state"]) for build in listed] == [(1, "passed")]
    assert cli.json("build", "list", "red", "--state", "passed")["builds"] == []
    everywhere = cli.json("build", "list", "--branch", "main")["builds"]
    assert {
        (build["pipeline"]["slug"], build["number"], build["state"])
        for build in everywhere
        if build["pipeline"]["slug"] in ("green", "red")
    } == {("green", 1, "passed"), ("red", 1, "failed")}


def test_build_view_shows_the_build_and_its_jobs(cli: Cli, green: Watched) -> None:
    build = cli.stack.build("green", 1)
    shown = cli.run("build", "view", "green", "1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split()[:3] == ["green", "#1", "passed"]
    assert "Ship it" in shown.stdout
    rows = {
        label: line[len(label) :].split()
        for line in shown.stdout.splitlines()
        for label in (":wave: greet", "produce")
        if line.startswith(label)
    }
    assert {label: [row[0], row[1], row[-1]] for label, row in rows.items()} == {
        label: ["passed", "0", _job(build, label)["id"]] for label in (":wave: greet", "produce")
    }


def test_job_log_prints_what_the_job_echoed(cli: Cli, green: Watched) -> None:
    job = _job(cli.stack.build("green", 1), ":wave: greet")
    for follow in ((), ("--follow",)):
        printed = cli.run("job", "log", "green", "1", job["id"], *follow)
        assert printed.returncode == 0, printed.stderr
        assert "hello from the CLI, build 1" in printed.stdout


def test_artifact_download_writes_the_exact_bytes(cli: Cli, green: Watched, tmp_path: Path) -> None:
    listed = cli.json("artifact", "list", "green", "1")["artifacts"]
    assert [(a["path"], a["file_size"]) for a in listed] == [("out/data.bin", len(GREEN_BYTES))]
    dest = tmp_path / "downloads"
    got = cli.json("artifact", "download", "green", "1", "--pattern", "out/*", "--dest", str(dest))
    assert got == {"files": [str(dest / "out" / "data.bin")]}
    assert (dest / "out" / "data.bin").read_bytes() == GREEN_BYTES


def test_job_retry_runs_the_failed_job_again(cli: Cli) -> None:
    slug = cli.stack.pipeline("Flaky", FLAKY)
    first = cli.stack.trigger(slug)["number"]
    failed = _job(cli.stack.finished(slug, first), "flaky")
    assert failed["state"] == "failed"
    retried = cli.json("job", "retry", slug, str(first), failed["id"])
    assert retried["id"] != failed["id"]
    build = cli.stack.finished(slug, first)
    assert build["state"] == "passed"
    jobs = {job["id"]: job for job in build["jobs"]}
    assert (jobs[failed["id"]]["retried"], jobs[failed["id"]]["retried_in_job_id"]) == (
        True,
        retried["id"],
    )
    assert jobs[retried["id"]]["state"] == "passed"


def test_job_unblock_answers_the_block_step_and_the_build_goes_on(cli: Cli) -> None:
    slug = cli.stack.pipeline("Gate", GATE)
    number = cli.stack.trigger(slug)["number"]
    block = wait_until(
        lambda: next(
            (
                job
                for job in cli.stack.build(slug, number)["jobs"]
                if job["type"] == "manual" and job["state"] == "blocked"
            ),
            None,
        ),
        what="the block step to be blocked",
    )
    unblocked = cli.json("job", "unblock", slug, str(number), block["id"], "--field", "version=1.2")
    assert (unblocked["id"], unblocked["state"]) == (block["id"], "unblocked")
    build = cli.stack.finished(slug, number)
    assert (build["state"], build["meta_data"]) == ("passed", {"version": "1.2"})
    assert "shipping 1.2" in cli.stack.log(_job(build, "ship"))


def test_agent_list_json_shows_the_running_agent(cli: Cli) -> None:
    agents = cli.json("agent", "list", "--name", "cli-*")["agents"]
    assert [(agent["name"], agent["connection_state"]) for agent in agents] == [
        (AGENT, "connected")
    ]


def test_agent_stop_stops_the_agent(cli: Cli) -> None:
    process = cli.stack.start_agent("spare")
    (spare,) = wait_until(
        lambda: cli.stack.client.get(f"/v2/organizations/{ORG}/agents?name=spare").json() or None,
        what="the agent to connect",
    )
    stopped = cli.json("agent", "stop", spare["id"])
    # The stop wakes the agent's held ping, so it may be gone by the time the CLI reads it back.
    assert stopped["id"] == spare["id"]
    assert stopped["connection_state"] in ("stopping", "stopped")
    assert wait_until(lambda: process.poll() is not None, what="the agent to exit")
    assert process.returncode == 0
    agent_url = f"/v2/organizations/{ORG}/agents/{spare['id']}"
    assert cli.stack.client.get(agent_url).json()["connection_state"] == "stopped"


def test_graphql_prints_the_data_as_json(cli: Cli, green: Watched) -> None:
    query = "query($slug: ID!) { pipeline(slug: $slug) { slug name } }"
    data = cli.json("graphql", query, "--var", f"slug={ORG}/green")
    assert data == {"pipeline": {"slug": "green", "name": "Green"}}


def test_a_refused_token_is_one_red_line_and_exit_status_1(cli: Cli) -> None:
    refused = cli.run("build", "list", "green", "--token", "not-a-token")
    assert refused.returncode == 1
    assert refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith(
        "error: Authentication required. Please supply a valid API Access Token"
    ), line
    assert line.endswith(
        f"(401, GET {cli.stack.url}/v2/organizations/{ORG}/pipelines/green/builds)"
    )


def test_without_a_kiteline_url_the_buildkite_settings_are_used(cli: Cli, green: Watched) -> None:
    # The stack stands in for api.buildkite.com; KITELINE_TOKEN is never sent there.
    env = {k: v for k, v in cli.env.items() if k not in ("KITELINE_URL", "KITELINE_ORG")}
    env |= {
        "KITELINE_TOKEN": "not-for-buildkite",
        "BUILDKITE_API_URL": f"{cli.stack.url}/v2",
        "BUILDKITE_API_TOKEN": cli.stack.api_token,
        "BUILDKITE_ORGANIZATION_SLUG": ORG,
    }
    listed = cli.run("build", "list", "green", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [b["number"] for b in json.loads(listed.stdout)["builds"]] == [1]


def test_build_watch_stopped_at_a_block_step_prints_the_command_that_unblocks_it(
    cli: Cli,
) -> None:
    slug = cli.stack.pipeline("Held", GATE)
    watched = cli.run("build", "create", slug, "--watch")
    assert watched.returncode == 1, watched.stderr
    build = cli.stack.build(slug, 1)
    (block,) = [job for job in build["jobs"] if job["type"] == "manual"]
    command = f"kiteline job unblock {slug} 1 {block['id']} --field version=VALUE"
    assert f"Release? is waiting to be unblocked: {command}" in watched.stdout.splitlines()
    unblocked = cli.run(*command.replace("VALUE", "2.0").split()[1:])
    assert unblocked.returncode == 0, unblocked.stderr
    assert cli.stack.finished(slug, 1)["meta_data"] == {"version": "2.0"}


def test_tables_at_80_columns_keep_ids_and_paths_whole(cli: Cli, green: Watched) -> None:
    narrow = cli.env | {"COLUMNS": "80"}
    (artifact,) = cli.json("artifact", "list", "green", "1")["artifacts"]
    listed = cli.run("artifact", "list", "green", "1", env=narrow)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    (row,) = [line for line in lines if artifact["id"] in line]
    assert row.split()[0] == "out/data.bin"
    assert row.split()[-2:] == [artifact["state"], artifact["id"]]
    assert f"Job {artifact['job_id']}" in lines
    (agent,) = cli.json("agent", "list", "--name", AGENT)["agents"]
    shown = cli.run("agent", "list", "--name", AGENT, env=narrow)
    (row,) = [line for line in shown.stdout.splitlines() if agent["id"] in line]
    assert row.split()[:2] == [AGENT, "connected"]


def test_a_malformed_key_value_is_a_usage_error_naming_the_option(cli: Cli) -> None:
    for args, why in (
        (("build", "create", "green", "--env", "NO_EQUALS"), "no '='"),
        (("job", "unblock", "green", "1", "some-job", "--field", "=value"), "no KEY before '='"),
        (("graphql", "{ viewer { user { email } } }", "--var", "novalue"), "no '='"),
        (("schedule", "create", "green", "--cronline", "@daily", "--env", "X"), "no '='"),
        (("schedule", "update", "some-schedule", "--env", "=1"), "no KEY before '='"),
    ):
        refused = cli.run(*args)
        assert refused.returncode == 2, refused.stderr
        expected = f"Invalid value for {args[-2]}: expected KEY=VALUE, got {args[-1]!r}: {why}"
        assert expected in " ".join(refused.stderr.replace("│", "").split()), refused.stderr


def test_schedules_are_created_listed_updated_and_deleted(cli: Cli, green: Watched) -> None:
    slug = green.pipeline["slug"]
    made = cli.run(
        *("schedule", "create", slug, "--cronline", "0 3 1 1 * Europe/Berlin"),
        *("--label", "Yearly", "--env", "A=1", "--env", "B=x=y"),
    )
    assert made.returncode == 0, made.stderr
    (line,) = made.stdout.splitlines()
    assert line.startswith("created schedule "), line
    uuid = line.split()[2].rstrip(":")
    (listed,) = cli.json("schedule", "list", slug)["schedules"]
    assert {key: listed[key] for key in ("uuid", "label", "cronline", "branch", "env")} == {
        "uuid": uuid,
        "label": "Yearly",
        "cronline": "0 3 1 1 * Europe/Berlin",
        "branch": None,
        "env": ["A=1", "B=x=y"],
    }
    changed = cli.json("schedule", "update", uuid, "--disabled", "--message", "Once a year")
    after = changed["schedule"]
    assert (after["enabled"], after["nextBuildAt"], after["message"], after["env"]) == (
        False,
        None,
        "Once a year",
        ["A=1", "B=x=y"],
    )
    table = cli.run("schedule", "list", slug)
    assert table.returncode == 0, table.stderr
    (row,) = [row for row in table.stdout.splitlines() if uuid in row]
    cells = [uuid, "Yearly", "0 3 1 1 * Europe/Berlin", "(default branch)", "no", "-"]
    assert row.split() == " ".join(cells).split()
    deleted = cli.run("schedule", "delete", uuid)
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted schedule {uuid}\n")
    assert cli.json("schedule", "list", slug) == {"schedules": []}
