"""`kiteline run` runs a step's plugins as the agent does: here a plugin vendored in the
repository, its hooks reading their configuration and replacing the command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_run import _kiteline_run, _repository

PIPELINE = """\
steps:
  - label: greet
    command: echo "replaced by the plugin"
    plugins:
      - ./.buildkite/plugins/hello:
          who: kiteline
"""


def test_a_vendored_plugin_runs_in_a_local_run(tmp_path: Path) -> None:
    repo = _repository(
        tmp_path / "repo",
        {
            ".buildkite/pipeline.yml": PIPELINE,
            ".buildkite/plugins/hello/hooks/pre-command": (
                'echo "pre-command: hello $BUILDKITE_PLUGIN_HELLO_WHO"\n'
            ),
            ".buildkite/plugins/hello/hooks/command": 'echo "command hook: $BUILDKITE_COMMAND"\n',
        },
    )
    completed = _kiteline_run(repo, "--json")

    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert [(job["label"], job["state"]) for job in summary["jobs"]] == [
        (":pipeline: Upload .buildkite/pipeline.yml", "passed"),
        ("greet", "passed"),
    ]
    assert "~~~ Running plugin hello pre-command hook\n" in completed.stderr
    assert "pre-command: hello kiteline\n" in completed.stderr
    assert 'command hook: echo "replaced by the plugin"\n' in completed.stderr
    assert "~~~ Running commands\n$ echo" not in completed.stderr
