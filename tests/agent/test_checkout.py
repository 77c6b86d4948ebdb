"""The default git checkout of BUILDKITE_REPO at BUILDKITE_COMMIT, before the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.plugins import git


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository on branch main with two commits of file.txt ("one", then "two")."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commits = []
    for content in ("one", "two"):
        (path / "file.txt").write_text(content + "\n")
        git(path, "add", "file.txt")
        git(path, "commit", "-q", "-m", f"write {content}")
        commits.append(git(path, "rev-parse", "HEAD"))
    return path, commits


async def test_checks_out_a_file_url_repository_at_the_given_commit(fake_api, run_jobs, repo):
    path, (first, _) = repo
    job = fake_api.add_job(
        "cat file.txt; git rev-parse HEAD",
        env={"BUILDKITE_REPO": f"file://{path}", "BUILDKITE_COMMIT": first},
    )
    await run_jobs(job)

    log = job.log()
    assert job.finish is not None and job.finish["exit_status"] == "0"
    assert f"~~~ Preparing working directory\n$ git clone -v -- file://{path} .\n" in log
    assert f"$ git fetch -v --prune -- origin {first}\n" in log
    assert f"$ git checkout -f {first}\n" in log
    assert f"$ cat file.txt; git rev-parse HEAD\none\n{first}\n" in log


async def test_commit_head_checks_out_the_branch_of_a_plain_path_repository(
    fake_api, run_jobs, repo
):
    path, (_, second) = repo
    job = fake_api.add_job(
        "git rev-parse HEAD", env={"BUILDKITE_REPO": str(path), "BUILDKITE_COMMIT": "HEAD"}
    )
    await run_jobs(job)

    log = job.log()
    assert "$ git fetch -v --prune -- origin main\n" in log
    assert "$ git checkout -f FETCH_HEAD\n" in log
    assert f"$ git rev-parse HEAD\n{second}\n" in log


async def test_a_second_job_fetches_into_the_existing_clean_checkout(fake_api, run_jobs, repo):
    path, (first, second) = repo
    repo_url = f"file://{path}"
    earlier = fake_api.add_job(
        "touch leftover", env={"BUILDKITE_REPO": repo_url, "BUILDKITE_COMMIT": first}
    )
    later = fake_api.add_job(
        "cat file.txt; test ! -e leftover && echo clean",
        env={"BUILDKITE_REPO": repo_url, "BUILDKITE_COMMIT": second},
    )
    await run_jobs(earlier, later)

    log = later.log()
    assert "$ git clone" not in log
    assert f"$ git remote set-url origin {repo_url}\n$ git clean -ffxdq\n" in log
    assert "\ntwo\nclean\n" in log


async def test_a_failed_checkout_fails_the_job_with_a_clear_message(fake_api, run_jobs, tmp_path):
    missing = f"file://{tmp_path / 'missing-repo'}"
    job = fake_api.add_job("echo never", env={"BUILDKITE_REPO": missing})
    await run_jobs(job)

    log = job.log()
    assert job.finish is not None and job.finish["exit_status"] == "128"
    assert (
        f"🚨 Error: Failed to check out {missing} at HEAD: "
        f"`git clone -v -- {missing} .` exited with status 128\n"
    ) in log
    assert "~~~ Running commands" not in log


async def test_skip_checkout_leaves_the_repository_alone(fake_api, run_jobs, repo):
    path, _ = repo
    job = fake_api.add_job(
        "ls -A | wc -l", env={"BUILDKITE_REPO": str(path), "BUILDKITE_SKIP_CHECKOUT": "true"}
    )
    await run_jobs(job)

    log = job.log()
    assert "$ git" not in log
    assert "$ ls -A | wc -l\n0\n" in log
