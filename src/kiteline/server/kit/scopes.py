"""Every REST API token scope Buildkite defines; `all` on the command line means all of them."""

from __future__ import annotations

SCOPES: tuple[str, ...] = (
    "read_agents",
    "write_agents",
    "read_teams",
    "write_teams",
    "read_artifacts",
    "write_artifacts",
    "read_builds",
    "write_builds",
    "read_build_logs",
    "write_build_logs",
    "read_job_env",
    "read_organizations",
    "write_organizations",
    "read_pipelines",
    "write_pipelines",
    "read_pipeline_templates",
    "write_pipeline_templates",
    "read_clusters",
    "write_clusters",
    "read_rules",
    "write_rules",
    "read_notification_services",
    "write_notification_services",
    "read_organization_invitations",
    "write_organization_invitations",
    "read_organization_settings",
    "write_organization_settings",
    "read_user",
    "read_audit_events",
    "read_suites",
    "write_suites",
    "graphql",
)


def parse_scopes(text: str) -> list[str]:
    """`all` or a comma-separated list; unknown names raise ValueError naming them."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(SCOPES)
    unknown = [name for name in names if name not in SCOPES]
    if unknown:
        raise ValueError(
            f"unknown scope(s): {', '.join(unknown)}; known scopes: {', '.join(SCOPES)}"
        )
    return names
