"""`kiteline agent …`: start agents that run jobs from a Kiteline (or Buildkite) server."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import typer

from kiteline.agent.config import (
    DEFAULT_CANCEL_GRACE_PERIOD_SECONDS,
    DEFAULT_NAME,
    DEFAULT_SHELL,
    AgentConfig,
    agent_api_endpoint,
    parse_tags,
)
from kiteline.agent.pool import run_agent

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"

app = typer.Typer(help="Run and manage agents", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run and manage agents."""


@app.command()
def start(
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        help="Server base URL, e.g. http://127.0.0.1:8080 (/v3 is appended). "
        "BUILDKITE_AGENT_ENDPOINT, if set instead, is used as-is.",
        show_default=False,
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="BUILDKITE_AGENT_TOKEN", help="Agent registration token."
    ),
    name: str = typer.Option(
        DEFAULT_NAME,
        "--name",
        envvar="BUILDKITE_AGENT_NAME",
        help="Agent name; %hostname and %spawn are substituted.",
    ),
    tags: str = typer.Option(
        "",
        "--tags",
        envvar="BUILDKITE_AGENT_TAGS",
        help="Comma-separated key=value tags, e.g. queue=default,os=linux.",
    ),
    spawn: int = typer.Option(1, "--spawn", min=1, help="Number of agents to run in parallel."),
    build_path: Path | None = typer.Option(
        None,
        "--build-path",
        envvar="BUILDKITE_BUILD_PATH",
        help="Where checkouts live [default: ./.kiteline/builds].",
        show_default=False,
    ),
    hooks_path: Path | None = typer.Option(
        None, "--hooks-path", envvar="BUILDKITE_HOOKS_PATH", help="Directory of agent hooks."
    ),
    shell: str = typer.Option(
        DEFAULT_SHELL, "--shell", envvar="BUILDKITE_SHELL", help="Shell that runs commands."
    ),
    cancel_grace_period: float = typer.Option(
        DEFAULT_CANCEL_GRACE_PERIOD_SECONDS,
        "--cancel-grace-period",
        min=0,
        help="Seconds between SIGTERM and SIGKILL when a job is cancelled.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Log every request."),
) -> None:
    """Register agents and run jobs until stopped (SIGTERM/SIGINT; twice cancels jobs)."""
    if not token:
        raise typer.BadParameter(
            "a registration token is required: pass --token or set BUILDKITE_AGENT_TOKEN",
            param_hint="--token",
        )
    try:
        parsed_tags = parse_tags(tags)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tags") from exc
    config = AgentConfig(
        endpoint=_resolve_endpoint(endpoint),
        token=token,
        name=name,
        tags=parsed_tags,
        spawn=spawn,
        build_path=(build_path or Path(".kiteline") / "builds").absolute(),
        hooks_path=hooks_path.absolute() if hooks_path else None,
        shell=shell,
        cancel_grace_period=cancel_grace_period,
    )
    _configure_logging(debug)
    raise typer.Exit(asyncio.run(run_agent(config)))


def _resolve_endpoint(flag: str | None) -> str:
    if flag:
        return agent_api_endpoint(flag)
    return os.environ.get("BUILDKITE_AGENT_ENDPOINT") or agent_api_endpoint(DEFAULT_SERVER_URL)


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-5s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if not debug:
        # httpx logs every request at INFO; that is --debug material.
        logging.getLogger("httpx").setLevel(logging.WARNING)
