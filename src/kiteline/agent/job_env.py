"""A job's environment: the agent's own, the server's `env`, then the variables the agent owns."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

REQUEST_HEADER_PREFIX = "BUILDKITE_REQUEST_HEADER_"
# Set by the agent alone (spec §3.1): a server-sent value is dropped and listed in
# BUILDKITE_IGNORED_ENV, even when the agent has no value of its own for it.
AGENT_OWNED = frozenset(
    {
        "BUILDKITE_AGENT_ENDPOINT",
        "BUILDKITE_AGENT_ACCESS_TOKEN",
        "BUILDKITE_AGENT_PID",
        "BUILDKITE_BIN_PATH",
        "BUILDKITE_BUILD_PATH",
        "BUILDKITE_BUILD_CHECKOUT_PATH",
        "BUILDKITE_HOOKS_PATH",
        "BUILDKITE_LOCAL_HOOKS_ENABLED",
        "BUILDKITE_PLUGINS_ENABLED",
        "BUILDKITE_PLUGINS_PATH",
        "BUILDKITE_SHELL",
        "BUILDKITE_REDACTOR_FILE",
    }
)
REMOVED = frozenset({"BUILDKITE_AGENT_TOKEN"})  # the registration token never reaches a job
# The job's alone: an agent started inside another CI job must not run that job's plugins.
NEVER_INHERITED = frozenset({"BUILDKITE_PLUGINS"})

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def safe_dir_name(value: str) -> str:
    """A path component as buildkite-agent makes one from an agent name: non-alnum -> `-`."""
    return _NOT_ALNUM.sub("-", value)


def checkout_path(build_path: Path, agent_name: str, server_env: Mapping[str, str]) -> Path:
    """`<build-path>/<agent name>/<org slug>/<pipeline slug>`."""
    missing = [
        name
        for name in ("BUILDKITE_ORGANIZATION_SLUG", "BUILDKITE_PIPELINE_SLUG")
        if not server_env.get(name)
    ]
    if missing:
        raise ValueError(f"the job's env is missing {' and '.join(missing)}")
    return (
        build_path
        / safe_dir_name(agent_name)
        / safe_dir_name(server_env["BUILDKITE_ORGANIZATION_SLUG"])
        / safe_dir_name(server_env["BUILDKITE_PIPELINE_SLUG"])
    )


def request_header_env(headers: Mapping[str, str]) -> dict[str, str]:
    """`Buildkite-Foo: x` -> `BUILDKITE_REQUEST_HEADER_BUILDKITE_FOO=x`."""
    return {
        REQUEST_HEADER_PREFIX + name.upper().replace("-", "_"): value
        for name, value in headers.items()
    }


def job_environment(
    server_env: Mapping[str, str],
    agent_values: Mapping[str, str],
    *,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for every process of a job.

    `agent_values` are the agent-owned variables (AGENT_OWNED and request headers); the
    agent's process environment (PATH, HOME…) lies underneath everything, and the bin path
    goes first on PATH.
    """

    def agent_owned(name: str) -> bool:
        return name in AGENT_OWNED or name.startswith(REQUEST_HEADER_PREFIX)

    inherited = {
        name: value
        for name, value in (os.environ if parent is None else parent).items()
        if not agent_owned(name) and name not in NEVER_INHERITED
    }
    ignored = sorted(name for name in server_env if agent_owned(name))
    env = {
        **inherited,
        **{name: value for name, value in server_env.items() if not agent_owned(name)},
        **agent_values,
    }
    for name in REMOVED:
        env.pop(name, None)
    if ignored:
        env["BUILDKITE_IGNORED_ENV"] = ",".join(ignored)
    if bin_path := env.get("BUILDKITE_BIN_PATH"):
        env["PATH"] = os.pathsep.join(filter(None, [bin_path, env.get("PATH", "")]))
    return env
