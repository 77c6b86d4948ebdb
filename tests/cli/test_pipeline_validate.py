"""`kiteline pipeline validate FILE`: the server's check of a pipeline's steps, run locally."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.processes import kiteline_command, kiteline_env

VALID = """\
steps:
  - label: tests
    key: tests
    command: make test
  - label: deploy
    command: make deploy
    depends_on: tests
"""
BROKEN = """\
steps:
  - label: tests
    key: tests
    command: make test
    timeout_in_minute: 5
  - label: deploy
    command: make deploy
    depends_on: test
"""


def _validate(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    return subprocess.run(
        kiteline_command("pipeline", "validate", str(path), *args),
        env=kiteline_env(tmp_path / "data", COLUMNS="80"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_pipeline_exits_0(tmp_path: Path) -> None:
    completed = _validate(tmp_path, VALID)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"{tmp_path / 'pipeline.yml'}: valid, 2 top-level step(s)\n"


def test_every_problem_is_one_line_naming_the_step_and_the_key(tmp_path: Path) -> None:
    completed = _validate(tmp_path, BROKEN)
    assert completed.returncode == 1
    path = tmp_path / "pipeline.yml"
    assert completed.stderr.splitlines() == [
        f'{path}: Step 1 ("tests"): "timeout_in_minute" is not a key of a command step; '
        'did you mean "timeout_in_minutes"?',
    ]


def test_depends_on_is_checked_against_the_files_keys(tmp_path: Path) -> None:
    fixed = BROKEN.replace("    timeout_in_minute: 5\n", "")
    completed = _validate(tmp_path, fixed, "--json")
    assert completed.returncode == 1
    assert json.loads(completed.stdout) == {
        "valid": False,
        "issues": [
            {
                "where": 'Step 2 ("deploy")',
                "path": 'steps[1] (label "deploy").depends_on',
                "message": 'depends_on names "test", but no step has that key; '
                'did you mean "tests"?',
            }
        ],
    }
