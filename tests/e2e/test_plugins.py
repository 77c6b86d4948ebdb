"""Pipelines with `plugins:` as Buildkite users write them, run unchanged by a real server and
a real agent: plugins are git repositories made here, served as file:// URLs (directly, or
through the agent's plugins base URL for `org/name` sources), at a local path, or vendored in
the build's repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.plugins import git, make_plugin, write_hooks
from tests.support.stack import stack

GREETER_HOOKS = {
    "environment": 'echo "hook: greeter environment"\n',
    "pre-command": (
        'echo "hook: greeter pre-command: hello $BUILDKITE_PLUGIN_GREETER_NAME, '
        "times $BUILDKITE_PLUGIN_GREETER_TIMES_0 and $BUILDKITE_PLUGIN_GREETER_TIMES_1, "
        'loud=$BUILDKITE_PLUGIN_GREETER_STYLE_LOUD"\n'
        'echo "hook: greeter configuration $BUILDKITE_PLUGIN_CONFIGURATION"\n'
    ),
    "post-command": (
        'echo "hook: greeter post-command: command exited $BUILDKITE_COMMAND_EXIT_STATUS"\n'
    ),
}
RUNNER_HOOKS = {
    "command": (
        'echo "hook: runner command instead of: $BUILDKITE_COMMAND"\n'
        'echo "hook: runner sees greeter config: ${BUILDKITE_PLUGIN_GREETER_NAME:-none}"\n'
    ),
}


def hook_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("hook:")]


def test_a_pipeline_with_two_plugins_runs_unchanged(database_url: str, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    make_plugin(mirror / "acme" / "greeter-buildkite-plugin", GREETER_HOOKS, tag="v1.2.0")
    runner = make_plugin(tmp_path / "repos" / "runner-buildkite-plugin", RUNNER_HOOKS)
    configuration = f"""
steps:
  - label: ":wave: plugins"
    command: echo "this command is replaced by the runner plugin"
    plugins:
      - acme/greeter#v1.2.0:
          name: world
          times: [1, 2]
          style:
            loud: true
      - file://{runner}#v1.0.0: ~
"""
    with stack(database_url, tmp_path) as s:
        s.pipeline("Plugins", configuration)
        s.start_agent("runner", plugins_base_url=f"file://{mirror}")
        s.trigger("plugins")
        build = s.finished("plugins", 1)
        log = s.log(build["jobs"][0])
    assert (build["state"], build["jobs"][0]["exit_status"]) == ("passed", 0), log
    assert hook_lines(log) == [
        "hook: greeter environment",
        "hook: greeter pre-command: hello world, times 1 and 2, loud=true",
        'hook: greeter configuration {"name":"world","style":{"loud":true},"times":[1,2]}',
        'hook: runner command instead of: echo "this command is replaced by the runner plugin"',
        "hook: runner sees greeter config: none",
        "hook: greeter post-command: command exited 0",
    ]
    assert f"$ git clone -v --recursive -- file://{mirror}/acme/greeter-buildkite-plugin .\n" in log
    assert "~~~ Running plugin greeter-buildkite-plugin pre-command hook\n" in log
    assert "~~~ Running plugin runner command hook\n" in log
    assert "~~~ Running commands" not in log


def test_local_path_and_vendored_plugins_run_around_the_repositorys_hooks(
    database_url: str, tmp_path: Path
) -> None:
    local = make_plugin(
        tmp_path / "plugins" / "local-lint",
        {"pre-command": 'echo "hook: local-lint pre-command $BUILDKITE_PLUGIN_LOCAL_LINT_LEVEL"\n'},
        tag=None,
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_hooks(repo / ".buildkite", {"pre-command": 'echo "hook: repository pre-command"\n'})
    write_hooks(
        repo / ".buildkite" / "plugins" / "tool",
        {
            "environment": 'export TOOL_READY="tool ready"\n',
            "pre-command": 'echo "hook: vendored tool pre-command"\n',
        },
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hooks and a vendored plugin")
    configuration = f"""
steps:
  - command: 'echo "hook: command with $$TOOL_READY"'
    plugins:
      - {local}:
          level: strict
      - ./.buildkite/plugins/tool
"""
    with stack(database_url, tmp_path) as s:
        s.pipeline("Local", configuration, repository=f"file://{repo}")
        s.start_agent("runner")
        s.trigger("local")
        build = s.finished("local", 1)
        log = s.log(build["jobs"][0])
    assert build["state"] == "passed", log
    assert hook_lines(log) == [
        "hook: repository pre-command",
        "hook: local-lint pre-command strict",
        "hook: vendored tool pre-command",
        "hook: command with tool ready",
    ]


def test_a_plugin_that_cannot_be_fetched_fails_the_job_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    configuration = """
steps:
  - command: echo "never runs"
    plugins:
      - acme/missing#v1.0.0:
          anything: 1
"""
    with stack(database_url, tmp_path) as s:
        s.pipeline("Missing", configuration)
        s.start_agent("runner", plugins_base_url=f"file://{mirror}")
        s.trigger("missing")
        build = s.finished("missing", 1, timeout=180)
        log = s.log(build["jobs"][0])
    repository = f"file://{mirror}/acme/missing-buildkite-plugin"
    assert (build["state"], build["jobs"][0]["exit_status"]) == ("failed", 128)
    assert "never runs" not in log.replace('$ echo "never runs"', "")
    assert (
        "🚨 Error: Failed to checkout plugin missing "
        "(github.com/acme/missing-buildkite-plugin#v1.0.0) from "
        f"{repository}: `git clone -v --recursive -- {repository} .` exited with status 128\n"
    ) in log
    assert re.search(r"fatal: .*missing-buildkite-plugin", log)
