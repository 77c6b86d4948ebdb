"""Plugins run by the agent as buildkite-agent runs them: checked out per ref from git
(file:// URLs, a base URL for `org/name`, plain paths), vendored in the repository, their hooks
in Buildkite's order around the agent's and the repository's, their configuration as
variables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kiteline.agent.job_env import job_environment
from kiteline.agent.plugin_checkout import checkout_plugin
from kiteline.agent.plugin_source import parse_plugins
from kiteline.agent.process import Shell
from tests.support.plugins import commit_hooks, git, make_plugin, write_hooks

HOOKS = (
    "environment",
    "pre-checkout",
    "post-checkout",
    "pre-command",
    "post-command",
    "pre-artifact",
    "post-artifact",
    "pre-exit",
)


def echo_hooks(scope: str, names: tuple[str, ...] = HOOKS) -> dict[str, str]:
    return {name: f'echo "hook: {scope} {name}"\n' for name in names}


def plugins_env(*entries: object) -> dict[str, str]:
    return {"BUILDKITE_PLUGINS": json.dumps(list(entries))}


def hook_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(("hook:", "command:"))]


@pytest.fixture
def plugins_root(tmp_path: Path) -> Path:
    return tmp_path / "plugin-repos"


async def test_a_plugins_hooks_read_its_configuration(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(
        plugins_root / "greeter-buildkite-plugin",
        {
            "pre-command": 'echo "hook: pre-command greets $BUILDKITE_PLUGIN_GREETER_NAME '
            "${BUILDKITE_PLUGIN_GREETER_TIMES_0}/${BUILDKITE_PLUGIN_GREETER_TIMES_1} "
            '$BUILDKITE_PLUGIN_GREETER_OPTIONS_LOUD"\n'
            'echo "hook: configuration $BUILDKITE_PLUGIN_CONFIGURATION"\n',
            "post-command": 'echo "hook: post-command after $BUILDKITE_COMMAND_EXIT_STATUS"\n',
        },
    )
    config = {"name": "world", "times": [1, 2], "options": {"loud": True}}
    job = fake_api.add_job(
        'echo "command: name=${BUILDKITE_PLUGIN_GREETER_NAME:-unset}"',
        env=plugins_env({f"file://{plugin}#v1.0.0": config}),
    )
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert hook_lines(job.log()) == [
        "hook: pre-command greets world 1/2 true",
        'hook: configuration {"name":"world","options":{"loud":true},"times":[1,2]}',
        "command: name=unset",
        "hook: post-command after 0",
    ]
    assert "~~~ Running plugin greeter pre-command hook\n" in job.log()


async def test_shorthand_sources_are_cloned_from_the_base_url(
    fake_api, run_jobs, plugins_root, agent_config, tmp_path
):
    make_plugin(
        plugins_root / "acme" / "lint-buildkite-plugin", echo_hooks("lint", ("pre-command",))
    )
    job = fake_api.add_job("echo command: ran", env=plugins_env("acme/lint#v1.0.0"))
    await run_jobs(job, plugins_base_url=f"file://{plugins_root}")

    log = job.log()
    assert (
        f"$ git clone -v --recursive -- file://{plugins_root}/acme/lint-buildkite-plugin .\n" in log
    )
    assert "# Checking out `v1.0.0`\n" in log
    assert hook_lines(log) == ["hook: lint pre-command", "command: ran"]
    checkout = tmp_path / "builds" / ".plugins" / "test-agent"
    assert (checkout / "github-com-acme-lint-buildkite-plugin-v1-0-0" / "hooks").is_dir()


async def test_a_command_hook_replaces_the_command(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(
        plugins_root / "runner",
        {"command": 'echo "hook: command instead of: $BUILDKITE_COMMAND"\nexit 3\n'},
    )
    job = fake_api.add_job("echo command: never", env=plugins_env(f"{plugin}#v1.0.0"))
    await run_jobs(job)

    assert hook_lines(job.log()) == ["hook: command instead of: echo command: never"]
    assert "~~~ Running commands" not in job.log()
    assert "🚨 Error: The plugin runner command hook exited with status 3\n" in job.log()
    assert job.finish is not None and job.finish["exit_status"] == "3"


async def test_hooks_run_in_buildkites_order(
    fake_api, run_jobs, plugins_root, tmp_path, agent_config
):
    agent_hooks = tmp_path / "agent-hooks"
    agent_hooks.mkdir()
    for name, script in echo_hooks("agent").items():
        (agent_hooks / name).write_text(script)
    first = make_plugin(plugins_root / "first", echo_hooks("first"))
    second = make_plugin(plugins_root / "second", echo_hooks("second"))
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_hooks(repo / ".buildkite", echo_hooks("repository"))
    (repo / "out.txt").write_text("artifact\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "repository hooks")
    job = fake_api.add_job(
        "echo command: ran",
        env={
            **plugins_env(f"file://{first}#v1.0.0", {f"file://{second}#v1.0.0": None}),
            "BUILDKITE_REPO": str(repo),
            "BUILDKITE_ARTIFACT_PATHS": "out.txt",
        },
    )
    await run_jobs(job, hooks_path=agent_hooks)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert hook_lines(job.log()) == [
        "hook: agent environment",
        "hook: first environment",
        "hook: second environment",
        "hook: agent pre-checkout",
        "hook: first pre-checkout",
        "hook: second pre-checkout",
        "hook: agent post-checkout",
        "hook: repository post-checkout",
        "hook: first post-checkout",
        "hook: second post-checkout",
        "hook: agent pre-command",
        "hook: repository pre-command",
        "hook: first pre-command",
        "hook: second pre-command",
        "command: ran",
        "hook: agent post-command",
        "hook: repository post-command",
        "hook: first post-command",
        "hook: second post-command",
        "hook: agent pre-artifact",
        "hook: repository pre-artifact",
        "hook: first pre-artifact",
        "hook: second pre-artifact",
        "hook: agent post-artifact",
        "hook: repository post-artifact",
        "hook: first post-artifact",
        "hook: second post-artifact",
        "hook: agent pre-exit",
        "hook: repository pre-exit",
        "hook: first pre-exit",
        "hook: second pre-exit",
    ]
    assert "~~~ Running repository pre-command hook\n" in job.log()


async def test_a_plugin_checkout_hook_replaces_the_git_checkout(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(
        plugins_root / "custom-checkout",
        {"checkout": 'echo "hook: checkout in $PWD"\necho made > made.txt\n'},
    )
    job = fake_api.add_job(
        "echo command: $(cat made.txt)",
        env={**plugins_env(f"{plugin}#v1.0.0"), "BUILDKITE_REPO": "file:///nowhere/at/all"},
    )
    await run_jobs(job)

    log = job.log()
    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert "git clone -v -- file:///nowhere" not in log
    assert hook_lines(log)[1] == "command: made"
    assert hook_lines(log)[0].endswith("/acme/widgets")


async def test_environment_hook_exports_carry_forward_but_configuration_does_not(
    fake_api, run_jobs, plugins_root
):
    plugin = make_plugin(
        plugins_root / "exporter",
        {"environment": "export FROM_PLUGIN=exported-$BUILDKITE_PLUGIN_EXPORTER_VALUE\n"},
    )
    job = fake_api.add_job(
        'echo "command: $FROM_PLUGIN ${BUILDKITE_PLUGIN_EXPORTER_VALUE:-none}"',
        env=plugins_env({f"{plugin}#v1.0.0": {"value": "42"}}),
    )
    await run_jobs(job)

    assert hook_lines(job.log()) == ["command: exported-42 none"]


async def test_checkouts_are_reused_per_ref_and_recloned_when_fresh_is_asked(
    fake_api, run_jobs, plugins_root, tmp_path
):
    plugin = make_plugin(plugins_root / "versioned", {"pre-command": 'echo "hook: one"\n'})
    commit_hooks(plugin, {"pre-command": 'echo "hook: two"\n'}, tag="v2.0.0")
    jobs = [
        fake_api.add_job("true", env=plugins_env(f"{plugin}#v1.0.0")),
        fake_api.add_job("true", env=plugins_env(f"{plugin}#v1.0.0")),
        fake_api.add_job("true", env=plugins_env(f"{plugin}#v2.0.0")),
        fake_api.add_job(
            "true",
            env={
                **plugins_env(f"{plugin}#v1.0.0"),
                "BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH": "true",
            },
        ),
    ]
    await run_jobs(*jobs)  # one worker, in order

    logs = [job.log() for job in jobs]
    assert [hook_lines(log) for log in logs] == [
        ["hook: one"],
        ["hook: one"],
        ["hook: two"],
        ["hook: one"],
    ]
    assert ["git clone" in log for log in logs] == [True, False, True, True]
    short = git(plugin, "rev-parse", "--short=7", "v1.0.0^{commit}")
    assert f'# Plugin "{plugin}#v1.0.0" already checked out ({short})\n' in logs[1]
    assert "# BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH is true; removed previous checkout" in logs[3]


async def test_a_plugin_that_cannot_be_fetched_fails_the_job(
    fake_api, run_jobs, tmp_path, monkeypatch
):
    monkeypatch.setattr("kiteline.agent.plugin_checkout.CLONE_RETRY_SECONDS", 0.01)
    hooks = tmp_path / "agent-hooks"
    hooks.mkdir()
    (hooks / "pre-exit").write_text('echo "hook: agent pre-exit"\n')
    missing = tmp_path / "no-such-plugin"
    job = fake_api.add_job("echo command: never", env=plugins_env(f"file://{missing}#v1.0.0"))
    await run_jobs(job, hooks_path=hooks)

    log = job.log()
    assert job.finish is not None and job.finish["exit_status"] == "128"
    assert log.count(f"$ git clone -v --recursive -- {missing} .\n") == 3
    assert (
        f"🚨 Error: Failed to checkout plugin no-such-plugin ({missing}#v1.0.0) from "
        f"{missing}: `git clone -v --recursive -- {missing} .` exited with status 128\n"
    ) in log
    assert hook_lines(log) == ["hook: agent pre-exit"]


async def test_a_ref_that_does_not_exist_fails_the_job(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(plugins_root / "tagged", {})
    job = fake_api.add_job("echo command: never", env=plugins_env(f"{plugin}#v9.9.9"))
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert (
        f"🚨 Error: Failed to checkout plugin tagged ({plugin}#v9.9.9) from {plugin}: "
        "`git -c advice.detachedHead=false checkout -f v9.9.9` exited with status 1\n"
    ) in job.log()


async def test_vendored_plugins_come_from_the_checkout(fake_api, run_jobs, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_hooks(
        repo / ".buildkite" / "plugins" / "local-tool",
        {
            "environment": 'echo "hook: vendored environment"\n',
            "pre-command": 'echo "hook: vendored pre-command $BUILDKITE_PLUGIN_LOCAL_TOOL_MODE"\n',
        },
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "vendored plugin")
    job = fake_api.add_job(
        "echo command: ran",
        env={
            **plugins_env({"./.buildkite/plugins/local-tool": {"mode": "fast"}}),
            "BUILDKITE_REPO": str(repo),
        },
    )
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert hook_lines(job.log()) == [
        "hook: vendored environment",
        "hook: vendored pre-command fast",
        "command: ran",
    ]


async def test_a_vendored_plugin_missing_from_the_checkout_fails_the_job(fake_api, run_jobs):
    job = fake_api.add_job("echo command: never", env=plugins_env("./.buildkite/plugins/gone"))
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert (
        '🚨 Error: vendored plugin path "./.buildkite/plugins/gone" must be a directory within '
        "the checked-out repository\n"
    ) in job.log()


async def test_a_bad_plugin_definition_fails_the_job(fake_api, run_jobs):
    job = fake_api.add_job("echo command: never", env={"BUILDKITE_PLUGINS": '[{"x#a#b": {}}]'})
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert (
        "🚨 Error: Failed to parse a plugin definition: too many '#'s in "
        '"github.com/buildkite-plugins/x-buildkite-plugin#a#b"\n'
    ) in job.log()


async def test_an_agent_without_plugins_refuses_them(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(plugins_root / "any", {})
    job = fake_api.add_job("echo command: never", env=plugins_env(f"{plugin}#v1.0.0"))
    await run_jobs(job, plugins_enabled=False)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert "🚨 Error: Plugins have been disabled on this agent with `--no-plugins`\n" in job.log()


async def test_an_agent_without_local_hooks_refuses_repository_hooks(fake_api, run_jobs, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_hooks(repo / ".buildkite", {"pre-command": "echo hook: repository\n"})
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hooks")
    job = fake_api.add_job("echo command: never", env={"BUILDKITE_REPO": str(repo)})
    await run_jobs(job, local_hooks_enabled=False)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert hook_lines(job.log()) == []
    assert "local hooks are disabled\n" in job.log()


async def test_a_hook_in_another_language_runs_as_itself(fake_api, run_jobs, plugins_root):
    plugin = make_plugin(
        plugins_root / "python-hooks",
        {
            "pre-command": "#!/usr/bin/env python3\nimport os\n"
            "print('hook: python', os.environ['BUILDKITE_PLUGIN_PYTHON_HOOKS_GREETING'],"
            " os.environ['BUILDKITE_HOOK_PHASE'])\n"
        },
    )
    job = fake_api.add_job(
        "echo command: ran", env=plugins_env({f"{plugin}#v1.0.0": {"greeting": "hello"}})
    )
    await run_jobs(job)

    assert hook_lines(job.log()) == ["hook: python hello pre-command", "command: ran"]


async def test_concurrent_checkouts_of_one_plugin_clone_it_once(plugins_root, tmp_path):
    plugin_repo = make_plugin(plugins_root / "shared", {"pre-command": "true\n"})
    (plugin,) = parse_plugins(json.dumps([f"{plugin_repo}#v1.0.0"]))
    logs: list[bytearray] = [bytearray(), bytearray()]
    shells = [Shell(log.extend, cancelled=asyncio.Event(), grace_period=1.0) for log in logs]
    plugins_dir = tmp_path / "plugins" / "agent"

    checkouts = await asyncio.gather(
        *(
            checkout_plugin(shell, plugin, plugins_dir=plugins_dir, base_url="", env={})
            for shell in shells
        )
    )

    assert checkouts[0] == checkouts[1]
    texts = sorted((log.decode() for log in logs), key=lambda text: "git clone" in text)
    assert ["git clone" in text for text in texts] == [False, True]
    assert "already checked out" in texts[0]
    assert sorted(path.name for path in plugins_dir.iterdir()) == [
        plugin.identifier,
        f"{plugin.identifier}.lock",
    ]


async def test_each_spawned_worker_keeps_its_own_checkouts(
    fake_api, run_jobs, plugins_root, tmp_path
):
    plugin = make_plugin(plugins_root / "shared", {"pre-command": 'echo "hook: shared"\n'})
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # Each job waits for the other to start: one worker cannot run both.
    together = (
        f"touch {barrier}/$BUILDKITE_JOB_ID; for i in $(seq 200); do "
        f'[ "$(ls {barrier} | wc -l)" -ge 2 ] && break; sleep 0.1; done'
    )
    jobs = [fake_api.add_job(together, env=plugins_env(f"{plugin}#v1.0.0")) for _ in range(2)]
    await run_jobs(*jobs, spawn=2)

    assert [hook_lines(job.log()) for job in jobs] == [["hook: shared"], ["hook: shared"]]
    plugins_path = tmp_path / "builds" / ".plugins"
    assert sorted(path.name for path in plugins_path.iterdir()) == [
        "test-agent-1",
        "test-agent-2",
    ]


async def test_a_plugins_path_that_cannot_be_written_fails_the_job(
    fake_api, run_jobs, plugins_root, tmp_path
):
    plugin = make_plugin(plugins_root / "any", {})
    not_a_directory = tmp_path / "plugins-file"
    not_a_directory.write_text("in the way\n")
    job = fake_api.add_job("echo command: never", env=plugins_env(f"{plugin}#v1.0.0"))
    await run_jobs(job, plugins_path=not_a_directory)

    assert job.finish is not None and job.finish["exit_status"] == "1"
    assert "🚨 Error: Failed to checkout plugin any: [Errno " in job.log()
    assert hook_lines(job.log()) == []


def test_plugins_come_from_the_job_never_from_the_agents_own_environment() -> None:
    parent = {"PATH": "/usr/bin", "BUILDKITE_PLUGINS": '["outer-ci-job-plugin#v1"]'}
    assert "BUILDKITE_PLUGINS" not in job_environment({}, {}, parent=parent)
    job = job_environment({"BUILDKITE_PLUGINS": '["mine#v1"]'}, {}, parent=parent)
    assert job["BUILDKITE_PLUGINS"] == '["mine#v1"]'


async def test_null_plugins_are_no_plugins(fake_api, run_jobs):
    job = fake_api.add_job("echo command: ran", env={"BUILDKITE_PLUGINS": "null"})
    await run_jobs(job)

    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert "Preparing plugins" not in job.log()


async def test_a_plugin_listed_twice_is_checked_out_once_and_runs_with_each_configuration(
    fake_api, run_jobs, plugins_root
):
    plugin = make_plugin(
        plugins_root / "twice", {"pre-command": 'echo "hook: twice $BUILDKITE_PLUGIN_TWICE_N"\n'}
    )
    job = fake_api.add_job(
        "echo command: ran",
        env=plugins_env({f"{plugin}#v1.0.0": {"n": 1}}, {f"{plugin}#v1.0.0": {"n": 2}}),
    )
    await run_jobs(job)

    assert hook_lines(job.log()) == ["hook: twice 1", "hook: twice 2", "command: ran"]
    assert job.log().count("git clone") == 1


async def test_a_null_in_the_configuration_leaves_the_hooks_without_it(
    fake_api, run_jobs, plugins_root
):
    plugin = make_plugin(
        plugins_root / "nullable",
        {"pre-command": 'echo "hook: nullable ${BUILDKITE_PLUGIN_NULLABLE_A:-no variables}"\n'},
    )
    job = fake_api.add_job(
        "echo command: ran", env=plugins_env({f"{plugin}#v1.0.0": {"a": "x", "b": None}})
    )
    await run_jobs(job)

    assert "⚠️ Warning: Error configuring plugin environment: unknown type <nil> <nil>\n" in (
        job.log()
    )
    assert hook_lines(job.log()) == ["hook: nullable no variables", "command: ran"]
