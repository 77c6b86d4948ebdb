"""`kiteline run` as a user runs it: a real process in a temporary git repository, with its
own server and agent, a block step, a dynamic upload and an artifact."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugins import git
from tests.support.processes import kiteline_command

PIPELINE = """\
steps:
  - label: greet
    key: greet
    command: scripts/greet.sh
  - block: Release?
    fields:
      - text: Release name
        key: release-name
  - label: generate
    command: buildkite-agent pipeline upload .buildkite/release.yml
"""

# Uploaded by `generate`: $$ leaves a `$` for the shell, ${…} is filled in by the upload.
RELEASE = """\
steps:
  - label: produce
    key: produce
    artifact_paths: "out/*.txt"
    command: |
      mkdir -p out
      echo "release $$(buildkite-agent meta-data get release-name) of ${BUILDKITE_BRANCH}" \\
        > out/release.txt
      cat out/release.txt
"""

COMMITTED_GREET = '#!/bin/sh\necho "greeting from the last commit"\n'
WORKING_GREET = """\
#!/bin/sh
echo "greeting from the working tree, $GREETING_STYLE"
echo "for team $(buildkite-agent meta-data get team)"
cat notes.txt
"""
ARTIFACT = b"release kite-42 of main\n"


@dataclass
class Run:
    repo: Path
    completed: subprocess.CompletedProcess[str]
    artifacts: Path
    head_before: str
    status_before: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.completed.stdout)  # type: ignore[no-any-return]


def _repository(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
        if name.endswith(".sh"):
            (path / name).chmod(0o755)
    git(path, "add", "-A")
    git(path, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "Add the pipeline")
    return path


def _kiteline_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITELINE_", "BUILDKITE_"))}
    # The default artifacts folder is in the user's cache: here, the test's own.
    env["XDG_CACHE_HOME"] = str(cwd.parent / "cache")
    return subprocess.run(
        kiteline_command("run", *args),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run of the whole pipeline, from a repository with uncommitted changes."""
    repo = _repository(
        tmp_path_factory.mktemp("release") / "repo",
        {
            ".buildkite/pipeline.yml": PIPELINE,
            ".buildkite/release.yml": RELEASE,
            "scripts/greet.sh": COMMITTED_GREET,
        },
    )
    (repo / "scripts/greet.sh").write_text(WORKING_GREET)
    (repo / "notes.txt").write_text("an untracked note\n")
    head_before = git(repo, "rev-parse", "HEAD")
    status_before = git(repo, "status", "--porcelain")
    artifacts = repo.parent / "artifacts"
    completed = _kiteline_run(
        repo,
        "--unblock",
        "release-name=kite-42",
        "--env",
        "GREETING_STYLE=loudly",
        "--meta-data",
        "team=kites",
        "--artifacts",
        str(artifacts),
        "--json",
    )
    return Run(repo, completed, artifacts, head_before, status_before)


def test_a_passing_pipeline_exits_0(release: Run) -> None:
    assert release.completed.returncode == 0, release.completed.stderr


def test_every_jobs_log_is_shown(release: Run) -> None:
    shown = release.completed.stderr
    assert "Uploaded the pipeline from .buildkite/pipeline.yml" in shown
    assert "greeting from the working tree, loudly" in shown
    assert "for team kites" in shown
    assert "Uploaded the pipeline from .buildkite/release.yml" in shown
    assert "release kite-42 of main" in shown
    assert "Release? unblocked (release-name=kite-42)" in shown


def test_uncommitted_and_untracked_changes_are_checked_out_and_left_alone(release: Run) -> None:
    shown = release.completed.stderr
    assert "greeting from the working tree" in shown
    assert "an untracked note" in shown
    assert "greeting from the last commit" not in shown
    commit = release.summary["commit"]
    assert git(release.repo, "rev-parse", f"{commit}^") == release.head_before
    assert git(release.repo, "rev-parse", "HEAD") == release.head_before
    assert git(release.repo, "status", "--porcelain") == release.status_before
    assert git(release.repo, "stash", "list") == ""


def test_the_artifact_is_saved_with_its_content(release: Run) -> None:
    # The content also shows the block's field reached a later step, through meta-data.
    assert (release.artifacts / "out/release.txt").read_bytes() == ARTIFACT
    assert sorted(p.name for p in release.artifacts.rglob("*")) == ["out", "release.txt"]


def test_json_summarises_the_build(release: Run) -> None:
    summary = release.summary
    assert len(summary.pop("commit")) == 40
    script = {
        "type": "script",
        "state": "passed",
        "soft_failed": False,
        "exit_status": 0,
        "retried": False,
    }
    assert summary == {
        "number": 1,
        "state": "passed",
        "blocked": False,
        "branch": "main",
        "uncommitted_changes": True,
        "jobs": [
            {"label": ":pipeline: Upload .buildkite/pipeline.yml", "step_key": None, **script},
            {"label": "greet", "step_key": "greet", **script},
            {
                "label": "Release?",
                "type": "manual",
                "step_key": None,
                "state": "unblocked",
                "soft_failed": False,
                "exit_status": None,
                "retried": False,
            },
            {"label": "generate", "step_key": None, **script},
            {"label": "produce", "step_key": "produce", **script},
        ],
        "artifacts": [
            {
                "path": "out/release.txt",
                "file": str(release.artifacts / "out/release.txt"),
                "size": len(ARTIFACT),
                "sha1sum": hashlib.sha1(ARTIFACT).hexdigest(),
            }
        ],
        "artifacts_dir": str(release.artifacts),
        "agents_per_queue": os.cpu_count(),
        "data_dir": None,
        "error": None,
    }


def test_a_failing_step_fails_the_run_with_exit_status_1(tmp_path: Path) -> None:
    repo = _repository(
        tmp_path / "repo",
        {"pipeline.yml": "steps:\n  - label: broken\n    command: echo giving up; exit 3\n"},
    )
    completed = _kiteline_run(repo, "pipeline.yml", "--json")
    assert completed.returncode == 1, completed.stderr
    assert "giving up" in completed.stderr
    summary = json.loads(completed.stdout)
    assert (summary["state"], summary["error"]) == ("failed", None)
    assert [(job["label"], job["state"], job["exit_status"]) for job in summary["jobs"]] == [
        (":pipeline: Upload pipeline.yml", "passed", 0),
        ("broken", "failed", 3),
    ]


def test_a_required_field_nobody_can_answer_fails_the_run(tmp_path: Path) -> None:
    gate = "  - block: Deploy?\n    fields:\n      - text: Target\n        key: target\n"
    repo = _repository(
        tmp_path / "repo",
        {".buildkite/pipeline.yml": f"steps:\n{gate}  - label: ship\n    command: echo shipped\n"},
    )
    completed = _kiteline_run(repo, "--json")
    assert completed.returncode == 1, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["error"] == (
        "'Deploy?' could not be unblocked: Validation Failed: target is required. There is no "
        "terminal to ask on: pass --unblock target=VALUE"
    )
    assert summary["error"] in completed.stderr
    assert (summary["state"], summary["blocked"]) == ("passed", True)
    assert [(job["label"], job["state"]) for job in summary["jobs"]] == [
        (":pipeline: Upload .buildkite/pipeline.yml", "passed"),
        ("Deploy?", "blocked"),
        ("ship", "waiting"),
    ]


def test_a_step_no_local_agent_can_run_fails_the_run(tmp_path: Path) -> None:
    repo = _repository(
        tmp_path / "repo",
        {
            "pipeline.yml": "steps:\n  - label: ship\n    command: echo shipped\n"
            "    agents:\n      queue: deploy\n"
        },
    )
    completed = _kiteline_run(repo, "pipeline.yml")
    assert completed.returncode == 1, completed.stdout
    assert (
        "No local agent can run 'ship': it needs queue=deploy, and the agents have "
        "queue=default. Start matching agents with --tag (e.g. --tag queue=deploy)."
    ) in completed.stdout


def test_without_a_pipeline_file_it_says_where_it_looked(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo", {"README": "nothing to run\n"})
    completed = _kiteline_run(repo)
    assert completed.returncode == 2
    assert "No pipeline to run: name a file, or create one of .buildkite/pipeline.yml" in (
        " ".join(completed.stderr.split())
    )


def test_outside_a_git_repository_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yml").write_text("steps:\n  - command: echo hi\n")
    completed = _kiteline_run(tmp_path, "pipeline.yml")
    assert completed.returncode == 2
    assert "is not inside the working tree of one" in " ".join(completed.stderr.split())


def test_a_malformed_key_value_option_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo", {"pipeline.yml": "steps:\n  - command: echo hi\n"})
    for option, given, why in (
        ("--tag", "linux", "no '='"),
        ("--env", "=1", "no KEY before '='"),
        ("--unblock", "release-name", "no '='"),
    ):
        completed = _kiteline_run(repo, "pipeline.yml", option, given)
        assert completed.returncode == 2, completed.stderr
        said = " ".join(completed.stderr.replace("│", "").split())
        assert f"Invalid value for {option}: expected KEY=VALUE, got {given!r}: {why}" in said


SHARDS = """\
steps:
  - label: "shard %n of %t"
    command: echo "shard says $$BUILDKITE_PARALLEL_JOB"
    parallelism: 2
  - label: lenient
    command: echo "not quite"; exit 4
    soft_fail: true
  - label: produce
    artifact_paths: "out/*"
    command: mkdir -p out && echo made > out/made.txt
"""


def _headers(shown: str, label: str) -> int:
    """How many times a job's log header (a rule naming it) was printed."""
    return sum(1 for line in shown.splitlines() if line.startswith(f"{label} ─"))


@dataclass
class Shards:
    repo: Path
    completed: subprocess.CompletedProcess[str]

    @property
    def stderr(self) -> str:
        return self.completed.stderr

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.completed.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Shards:
    repo = _repository(
        tmp_path_factory.mktemp("shards") / "repo", {".buildkite/pipeline.yml": SHARDS}
    )
    return Shards(repo, _kiteline_run(repo, "--json"))


def test_parallel_labels_soft_failures_and_agents_per_cpu(shards: Shards) -> None:
    assert shards.completed.returncode == 0, shards.stderr
    summary = shards.summary
    assert summary["agents_per_queue"] == os.cpu_count()
    assert [(job["label"], job["state"], job["soft_failed"]) for job in summary["jobs"]] == [
        (":pipeline: Upload .buildkite/pipeline.yml", "passed", False),
        ("shard 0 of 2", "passed", False),
        ("shard 1 of 2", "passed", False),
        ("lenient", "failed", True),
        ("produce", "passed", False),
    ]
    assert "⚠ lenient soft_failed (exit status 4)" in shards.stderr


def test_each_job_has_one_header_and_its_checkout_folded_away(shards: Shards) -> None:
    shown = shards.stderr
    for shard in (0, 1):
        assert f"shard says {shard}" in shown
        assert _headers(shown, f"shard {shard} of 2") == 1
    assert "Preparing working directory" not in shown
    assert "git clone" not in shown
    assert "detached HEAD" not in shown
    assert "Uploading artifacts" not in shown


def test_verbose_shows_the_checkout_and_a_failed_job_shows_its_folded_lines(
    tmp_path: Path,
) -> None:
    repo = _repository(tmp_path / "repo", {"pipeline.yml": "steps:\n  - command: exit 3\n"})
    failed = _kiteline_run(repo, "pipeline.yml")
    assert failed.returncode == 1
    # The upload job passed: its checkout stays folded; the failed job's is shown at its end.
    assert failed.stdout.count("~~~ Preparing working directory") == 1
    assert "folded line(s) of exit 3:" in failed.stdout
    verbose = _kiteline_run(repo, "pipeline.yml", "-v")
    assert verbose.stdout.count("~~~ Preparing working directory") == 2


def test_an_ignored_artifacts_folder_in_the_repository_does_not_trip_the_run(
    tmp_path: Path,
) -> None:
    repo = _repository(
        tmp_path / "repo",
        {
            ".gitignore": "kiteline-artifacts/\n",
            ".buildkite/pipeline.yml": SHARDS.split("  - label: lenient")[0]
            + "  - artifact_paths: out/*\n    command: mkdir -p out && echo new > out/made.txt\n",
        },
    )
    (repo / "kiteline-artifacts" / "out").mkdir(parents=True)
    (repo / "kiteline-artifacts" / "out" / "made.txt").write_text("from the last run\n")
    for _ in range(2):
        completed = _kiteline_run(repo, "--artifacts", "kiteline-artifacts", "--json")
        assert completed.returncode == 0, completed.stderr
        assert (repo / "kiteline-artifacts" / "out" / "made.txt").read_text() == "new\n"
    assert git(repo, "status", "--porcelain") == ""


def test_artifacts_default_to_a_folder_outside_the_repository(shards: Shards) -> None:
    digest = hashlib.sha1(str(shards.repo.resolve()).encode()).hexdigest()[:8]
    cache = shards.repo.parent / "cache"
    folder = cache / "kiteline" / "run" / f"repo-{digest}" / "artifacts"
    summary = shards.summary
    assert summary["artifacts_dir"] == str(folder)
    assert [artifact["file"] for artifact in summary["artifacts"]] == [
        str(folder / "out" / "made.txt")
    ]
    assert (folder / "out" / "made.txt").read_text() == "made\n"
    assert git(shards.repo, "status", "--porcelain") == ""
