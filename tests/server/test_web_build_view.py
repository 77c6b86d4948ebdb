"""What the build page works out from rows, without a server: commit links, durations, sizes,
job rows in step order under their group and step, the waterfall's bars."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kiteline.pipeline import parse_pipeline
from kiteline.server.builds.models import Build
from kiteline.server.builds.planner import BuildContext, plan
from kiteline.server.jobs.models import Job
from kiteline.server.jobs.states import JobState
from kiteline.server.web.pages.build_view import HeadingRow, JobRow, Related, job_rows, waterfall
from kiteline.server.web.pages.formatting import commit_url, duration_text, size_text

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOTHING = Related(agents={}, users={}, triggered={}, parent=None, rebuilt_from=None)


@pytest.mark.parametrize(
    ("repository", "commit", "expected"),
    [
        ("git@github.com:acme/app.git", "abc1234", "https://github.com/acme/app/commit/abc1234"),
        ("https://github.com/acme/app", "abc1234", "https://github.com/acme/app/commit/abc1234"),
        (
            "https://gitlab.com/acme/app.git",
            "abc1234",
            "https://gitlab.com/acme/app/-/commit/abc1234",
        ),
        (
            "git@bitbucket.org:acme/app.git",
            "abc1234",
            "https://bitbucket.org/acme/app/commits/abc1234",
        ),
        ("git@github.com:acme/app.git", "HEAD", None),
        ("https://git.example.com/acme/app.git", "abc1234", None),
        ("", "abc1234", None),
    ],
)
def test_a_commit_links_to_its_code_host_when_known(
    repository: str, commit: str, expected: str | None
) -> None:
    assert commit_url(repository, commit) == expected


def test_durations_and_sizes_read_as_people_write_them() -> None:
    assert [duration_text(s) for s in (None, 0, 42.9, 185, 3720)] == [
        "",
        "0s",
        "42s",
        "3m 5s",
        "1h 2m",
    ]
    assert [size_text(n) for n in (9, 2048, 5 * 1024 * 1024)] == ["9 B", "2.0 KiB", "5.0 MiB"]


def _jobs(steps: str) -> tuple[Build, list[Job]]:
    build = Build(id=uuid.uuid4(), number=1, state="running", blocked=False, finished_at=None)
    context = BuildContext(
        branch="main",
        commit="HEAD",
        message="",
        number=1,
        build_id=build.id,
        source="api",
        env={},
        pipeline_slug="app",
        pipeline_id=uuid.uuid4(),
        pipeline_repository="",
        pipeline_default_branch="main",
        organization_slug="acme",
        organization_id=uuid.uuid4(),
    )
    jobs = []
    for position, planned in enumerate(plan(parse_pipeline(steps), context)):
        fields: dict[str, Any] = {k: v for k, v in vars(planned).items()}
        jobs.append(
            Job(
                id=uuid.uuid4(),
                build_id=build.id,
                position=position,
                retried=False,
                retries_count=0,
                soft_failed=False,
                created_at=NOW,
                **fields,
            )
        )
    return build, jobs


def _shape(rows: list[Any]) -> list[tuple[str, int, str]]:
    return [
        (
            row.kind if isinstance(row, HeadingRow) else f"{row.kind}:{row.values or ''}",
            row.depth,
            row.label,
        )
        for row in rows
    ]


def test_jobs_sit_under_their_group_and_their_matrix_or_parallel_step() -> None:
    build, jobs = _jobs(
        """\
steps:
  - group: Checks
    steps:
      - label: Unit
        command: echo unit
        matrix: ["3.11", "3.12"]
      - label: Lint
        command: echo lint
  - wait
  - label: Shards
    command: echo shard
    parallelism: 2
  - block: Ship
"""
    )
    rows = job_rows(build, jobs, NOTHING, None, NOW)
    assert _shape(rows) == [
        ("group", 0, "Checks"),
        ("step", 1, "Unit"),
        ("command:3.11", 2, "Unit"),
        ("command:3.12", 2, "Unit"),
        ("command:", 1, "Lint"),
        ("wait:", 0, "Wait"),
        ("step", 0, "Shards"),
        ("command:1/2", 1, "Shards"),
        ("command:2/2", 1, "Shards"),
        ("block:", 0, "Ship"),
    ]
    group = rows[0]
    assert isinstance(group, HeadingRow) and group.count == 3
    assert group.states == {"waiting": 3}


def test_a_retried_attempt_stays_beside_its_retry_and_only_the_newest_may_be_retried() -> None:
    build, (job,) = _jobs("steps:\n  - label: Flaky\n    command: exit 1\n")
    job.state, job.passed, job.exit_status = JobState.FINISHED, False, 1
    job.retried = True
    retry = Job(
        **{
            **{
                k: getattr(job, k)
                for k in ("build_id", "step_id", "position", "type", "label", "step", "definition")
            },
            "id": uuid.uuid4(),
            "state": JobState.FINISHED,
            "passed": False,
            "exit_status": 1,
            "retried": False,
            "retries_count": 1,
            "soft_failed": False,
            "created_at": NOW,
        }
    )
    rows = job_rows(build, [job, retry], NOTHING, None, NOW)
    assert [(r.job.retried, r.attempt, r.retry_allowed) for r in rows if isinstance(r, JobRow)] == [
        (True, 1, False),
        (False, 2, True),
    ]


def test_the_waterfall_spans_from_the_first_runnable_job_to_now_while_running() -> None:
    build, (first, second) = _jobs("steps:\n  - command: a\n  - command: b\n")
    first.runnable_at, first.started_at, first.finished_at = (
        NOW,
        NOW + timedelta(seconds=10),
        NOW + timedelta(seconds=30),
    )
    first.state, first.passed = JobState.FINISHED, True
    second.runnable_at, second.started_at = NOW + timedelta(seconds=30), NOW + timedelta(seconds=35)
    second.state = JobState.RUNNING
    chart = waterfall(build, [first, second], NOW + timedelta(seconds=40))
    assert chart.start == NOW and chart.end is None and chart.span == 40
    assert [(bar.runnable, bar.started, bar.finished, bar.state) for bar in chart.bars] == [
        (0, 10, 30, "passed"),
        (30, 35, None, "running"),
    ]
    assert chart.position(10) == 250 and chart.ticks() == ["0s", "10s", "20s", "30s", "40s"]
