"""The variables a pipeline's saved steps are interpolated with when a build is created.

Buildkite interpolates the steps of its YAML steps editor before the build exists, with a
documented subset of its variables (no build number, no job ids) and the steps' own top-level
`env`; `$$` and `\\$` escape a `$`, as in an uploaded pipeline.
"""

from __future__ import annotations

from typing import Any

from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines.service import Pipeline


def saved_steps_env(
    *,
    commit: str,
    branch: str,
    message: str | None,
    pull_request: dict[str, Any] | None,
    pipeline: Pipeline,
    organization: Organization,
) -> dict[str, str]:
    pull = pull_request or {}
    return {
        "BUILDKITE_BRANCH": branch,
        "BUILDKITE_TAG": "",
        "BUILDKITE_MESSAGE": message or "",
        "BUILDKITE_COMMIT": commit,
        "BUILDKITE_PIPELINE_SLUG": pipeline.slug,
        "BUILDKITE_PIPELINE_NAME": pipeline.name,
        "BUILDKITE_PIPELINE_ID": str(pipeline.id),
        "BUILDKITE_ORGANIZATION_SLUG": organization.slug,
        "BUILDKITE_REPO": pipeline.repository,
        "BUILDKITE_PULL_REQUEST": str(pull.get("id") or "false"),
        "BUILDKITE_PULL_REQUEST_BASE_BRANCH": str(pull.get("base") or ""),
        "BUILDKITE_PULL_REQUEST_REPO": str(pull.get("repository") or ""),
    }
