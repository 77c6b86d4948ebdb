"""A pipeline's source provider, as Buildkite models it: which code host its repository lives
on (from the repository URL, or set explicitly), the host's `owner/name` for the repository,
and the provider settings with Buildkite's defaults."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from kiteline.server.kit.errors import ValidationFailed

#: The code hosts whose webhooks Kiteline receives and whose commit statuses it posts.
PROVIDERS = ("github", "gitlab", "bitbucket", "gitea")
#: A repository on no known host (or none at all).
UNKNOWN = "git"

TRIGGER_MODES = ("code", "deployment", "fork", "none")

#: Buildkite's defaults for a new pipeline's provider settings.
DEFAULT_SETTINGS: dict[str, Any] = {
    "trigger_mode": "code",
    "build_branches": True,
    "build_tags": False,
    "build_pull_requests": True,
    "build_pull_request_forks": False,
    "build_pull_request_labels_changed": False,
    "build_pull_request_ready_for_review": False,
    "prefix_pull_request_fork_branch_names": True,
    "pull_request_branch_filter_enabled": False,
    "pull_request_branch_filter_configuration": "",
    "skip_builds_for_existing_commits": False,
    "skip_pull_request_builds_for_existing_commits": True,
    "publish_commit_status": True,
    "publish_commit_status_per_step": False,
    "publish_blocked_as_pending": False,
    "separate_pull_request_statuses": False,
    "use_step_key_as_commit_status": False,
    "filter_enabled": False,
    "filter_condition": "",
}
BOOLEAN_SETTINGS = frozenset(k for k, v in DEFAULT_SETTINGS.items() if isinstance(v, bool))
TEXT_SETTINGS = frozenset(k for k, v in DEFAULT_SETTINGS.items() if isinstance(v, str))
#: Kiteline's own: the secret a code host signs its deliveries with (never shown back).
SECRET_SETTING = "webhook_secret"

_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")


def repository_host_and_path(repository: str) -> tuple[str, str]:
    """`git@github.com:acme/app.git`, `https://github.com/acme/app`, `ssh://…` →
    (`github.com`, `acme/app`); ("", "") when it names no host."""
    repository = repository.strip()
    if "://" in repository:
        parts = urlsplit(repository)
        host, path = (parts.hostname or ""), parts.path
    elif match := _SCP_LIKE.match(repository):
        host, path = match["host"], match["path"]
    else:
        return "", ""
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return host.lower(), path


def provider_from_repository(repository: str) -> str:
    host, _ = repository_host_and_path(repository)
    for provider in PROVIDERS:
        if provider in host:
            return provider
    if host in ("codeberg.org",) or "forgejo" in host:
        return "gitea"
    return UNKNOWN


def provider_id(repository: str, settings: dict[str, Any]) -> str:
    """The explicit `provider_id` setting, else what the repository URL says."""
    explicit = settings.get("provider_id")
    return str(explicit) if explicit else provider_from_repository(repository)


def provider_settings(settings: dict[str, Any], repository: str) -> dict[str, Any]:
    """The settings as REST and GraphQL show them: defaults filled in, the secret left out,
    `repository` as the host's `owner/name`."""
    given = settings.get("provider_settings") or {}
    shown = {**DEFAULT_SETTINGS, **{k: v for k, v in given.items() if k != SECRET_SETTING}}
    shown["repository"] = repository_host_and_path(repository)[1] or None
    return shown


def setting(settings: dict[str, Any], key: str) -> Any:
    return (settings.get("provider_settings") or {}).get(key, DEFAULT_SETTINGS.get(key))


def check_provider_settings(value: Any, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """`provider_settings` from a create or update merged over the previous ones, or 422 naming
    the key that is wrong."""
    if not isinstance(value, dict):
        raise ValidationFailed.field("provider_settings", "must be an object")
    merged = dict(previous or {})
    for key, given in value.items():
        field = f"provider_settings.{key}"
        if key in BOOLEAN_SETTINGS and not isinstance(given, bool):
            raise ValidationFailed.field(field, "must be true or false")
        if key in TEXT_SETTINGS and given is not None and not isinstance(given, str):
            raise ValidationFailed.field(field, "must be a string")
        if key == "trigger_mode" and given not in TRIGGER_MODES:
            raise ValidationFailed.field(field, f"must be one of {', '.join(TRIGGER_MODES)}")
        if key == SECRET_SETTING and given is not None and not isinstance(given, str):
            raise ValidationFailed.field(field, "must be a string")
        merged[key] = given
    return merged


def check_provider_id(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in (*PROVIDERS, UNKNOWN):
        raise ValidationFailed.field(
            "provider_id", f"must be one of {', '.join((*PROVIDERS, UNKNOWN))}"
        )
    return str(value)
