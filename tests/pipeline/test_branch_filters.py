"""Step and pipeline branch filters, with the examples from Buildkite's documentation."""

import pytest

from kiteline.pipeline import branch_matches


@pytest.mark.parametrize(
    ("patterns", "branch", "expected"),
    [
        (["main"], "main", True),
        (["main"], "main-2", False),
        (["!production"], "main", True),
        (["!production"], "production", False),
        (["main features/*"], "features/login", True),
        (["main features/*"], "features/a/b", True),
        (["main features/*"], "other", False),
        (["*-test"], "rails-update-test", True),
        (["stages/* !stages/production"], "stages/demo", True),
        (["stages/* !stages/production"], "stages/production", False),
        (["v*.0"], "v1.0", True),
        (["v*.0"], "v1.1", False),
        (["v* !v1.*"], "v2.3", True),
        (["v* !v1.*"], "v1.1", False),
        (["main", "release/*"], "release/1.2", True),
        (["*"], "anything/at/all", True),
        (["Main"], "main", False),
        (["feature.*"], "featureX", False),
    ],
)
def test_branch_patterns(patterns, branch, expected):
    assert branch_matches(patterns, branch) is expected


def test_no_patterns_match_every_branch():
    assert branch_matches([], "anything") is True
    assert branch_matches(["  "], "anything") is True


def test_a_negation_wins_over_a_positive_match():
    assert branch_matches(["release/*", "!release/old"], "release/old") is False
