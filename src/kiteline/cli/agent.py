"""`kiteline agent …`: start agents that run jobs from a Kiteline (or Buildkite) server, list
and stop an organization's agents over the REST API, and the `buildkite-agent` subcommands
jobs call (`buildkite-agent` in a job is `kiteline agent`)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from kiteline.agent.api import AgentApi, ApiError
from kiteline.agent.config import (
    DEFAULT_CANCEL_GRACE_PERIOD_SECONDS,
    DEFAULT_NAME,
    DEFAULT_SHELL,
    AgentConfig,
    agent_api_endpoint,
    parse_tags,
)
from kiteline.agent.in_job import artifact_download, meta_data, pipeline
from kiteline.agent.in_job.annotate import (
    DEFAULT_CONTEXT,
    DEFAULT_PRIORITY,
    Annotation,
    AnnotationScope,
    AnnotationStyle,
    annotate,
    remove_annotation,
)
from kiteline.agent.in_job.artifact_upload import upload_artifacts
from kiteline.agent.in_job.context import InJobError, JobEnvironment, job_api
from kiteline.agent.in_job.redactor import RedactionFormat, add_redactions
from kiteline.agent.in_job.stdin import piped_stdin
from kiteline.agent.in_job.step import step_attribute
from kiteline.agent.plugin_source import DEFAULT_PLUGINS_BASE_URL
from kiteline.agent.pool import run_agent
from kiteline.cli import api as rest
from kiteline.cli import display
from kiteline.client import Agent

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"

T = TypeVar("T")

app = typer.Typer(
    rich_markup_mode=None,
    help="Run, list and stop agents, and the in-job buildkite-agent commands",
    no_args_is_help=True,
)
pipeline_app = typer.Typer(
    rich_markup_mode=None, help="Add steps to the running build", no_args_is_help=True
)
meta_data_app = typer.Typer(
    rich_markup_mode=None, help="The build's key/value meta-data", no_args_is_help=True
)
annotation_app = typer.Typer(
    rich_markup_mode=None, help="Remove build annotations", no_args_is_help=True
)
artifact_app = typer.Typer(
    rich_markup_mode=None, help="Upload and download build artifacts", no_args_is_help=True
)
step_app = typer.Typer(rich_markup_mode=None, help="Read the build's steps", no_args_is_help=True)
redactor_app = typer.Typer(
    rich_markup_mode=None, help="Keep values out of the job log", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(meta_data_app, name="meta-data")
app.add_typer(annotation_app, name="annotation")
app.add_typer(artifact_app, name="artifact")
app.add_typer(step_app, name="step")
app.add_typer(redactor_app, name="redactor")

_JOB_OPTION = typer.Option(
    None, "--job", help="The job to act as [default: $BUILDKITE_JOB_ID].", show_default=False
)
_BUILD_OPTION = typer.Option(
    None, "--build", help="Another build's UUID [default: $BUILDKITE_BUILD_ID].", show_default=False
)


@app.callback()
def _group() -> None:
    """Run agents, list and stop them; inside a job, talk to the build (as `buildkite-agent`)."""


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
    plugins_path: Path | None = typer.Option(
        None,
        "--plugins-path",
        envvar="BUILDKITE_PLUGINS_PATH",
        help="Where plugins are checked out [default: <build-path>/.plugins].",
        show_default=False,
    ),
    plugins_base_url: str = typer.Option(
        DEFAULT_PLUGINS_BASE_URL,
        "--plugins-base-url",
        envvar="KITELINE_PLUGINS_BASE_URL",
        help="Where `org/name` and scheme-less github.com/… plugin sources are cloned from "
        "(a mirror, an internal host, a file:// directory).",
    ),
    no_plugins: bool = typer.Option(
        False, "--no-plugins", envvar="BUILDKITE_NO_PLUGINS", help="Refuse jobs' plugins."
    ),
    plugins_always_clone_fresh: bool = typer.Option(
        False,
        "--plugins-always-clone-fresh",
        envvar="BUILDKITE_PLUGINS_ALWAYS_CLONE_FRESH",
        help="Clone plugins anew for every job instead of reusing earlier checkouts.",
    ),
    no_local_hooks: bool = typer.Option(
        False,
        "--no-local-hooks",
        envvar="BUILDKITE_NO_LOCAL_HOOKS",
        help="Refuse to run the repository's .buildkite/hooks.",
    ),
    strict_single_hooks: bool = typer.Option(
        False,
        "--strict-single-hooks",
        envvar="BUILDKITE_STRICT_SINGLE_HOOKS",
        help="Run only the first plugin's checkout and command hooks.",
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
        plugins_path=plugins_path.absolute() if plugins_path else None,
        plugins_base_url=plugins_base_url,
        plugins_enabled=not no_plugins,
        plugins_always_clone_fresh=plugins_always_clone_fresh,
        local_hooks_enabled=not no_local_hooks,
        strict_single_hooks=strict_single_hooks,
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


# -- the organization's agents, over the REST API ----------------------------------------------


@app.command("list")
@rest.api_command()
def list_agents(
    api: rest.Api,
    name: str | None = typer.Option(
        None, "--name", help="Only agents whose name matches (* glob)."
    ),
) -> None:
    """The organization's connected agents and the jobs they are running."""
    with api.connect() as client:
        agents = list(client.agents(name=name))
    api.show(
        rest.dump_all("agents", agents),
        view=lambda: _agents_table(agents) if agents else "no connected agents",
    )


@app.command("stop")
@rest.api_command()
def stop(
    api: rest.Api,
    agent_id: str = typer.Argument(..., help="The agent's ID (see `kiteline agent list`)."),
    force: bool = typer.Option(
        False, "--force", help="Cancel its job now, instead of stopping after the job."
    ),
) -> None:
    """Ask an agent to stop: after its current job, or at once with --force."""
    with api.connect() as client:
        client.stop_agent(agent_id, force=force)
        agent = client.agent(agent_id)
    api.show(
        rest.dump(agent),
        view=lambda: Text.assemble(
            "Agent ",
            (agent.name or agent.id, "bold"),
            " is ",
            display.state_text(agent.connection_state),
        ),
    )


def _agents_table(agents: list[Agent]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("Name", "State", "Job", "Hostname", "Version", "Tags", "ID"):
        table.add_column(column, no_wrap=column == "ID")
    for agent in agents:
        table.add_row(
            Text(agent.name or ""),
            display.state_text(agent.connection_state),
            Text(display.job_label(agent.job) if agent.job else ""),
            Text(agent.hostname or ""),
            Text(agent.version or ""),
            Text(" ".join(agent.meta_data)),
            agent.id,
        )
    return table


# -- in-job commands: read the job's env, call the Agent API with the job's token -----------


@contextmanager
def _errors_exit() -> Iterator[None]:
    """A command's failure as one `error:` line on stderr and its exit code (1, or 100…)."""
    try:
        yield
    except (InJobError, ApiError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code if isinstance(error, InJobError) else 1) from error


def _in_job(work: Callable[[JobEnvironment], Coroutine[Any, Any, T]]) -> T:
    with _errors_exit():
        return asyncio.run(work(JobEnvironment(dict(os.environ))))


def _with_api(work: Callable[[AgentApi, JobEnvironment], Coroutine[Any, Any, T]]) -> T:
    async def run(env: JobEnvironment) -> T:
        async with job_api(env) as api:
            return await work(api, env)

    return _in_job(run)


def _info(message: str) -> None:
    """Progress goes to stderr, leaving stdout to the data a command prints."""
    typer.echo(message, err=True)


@pipeline_app.command("upload")
def pipeline_upload(
    file: str | None = typer.Argument(
        None,
        help="Pipeline file, or - for stdin. Default: piped stdin, else the first of "
        + ", ".join(pipeline.DEFAULT_FILES),
        show_default=False,
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Replace the build's steps that have not run yet."
    ),
    no_interpolation: bool = typer.Option(
        False, "--no-interpolation", help="Leave $VARIABLES as written."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the pipeline as it would be sent, and send nothing."
    ),
    job: str | None = _JOB_OPTION,
) -> None:
    """Add a pipeline's steps to the running build."""

    async def work(env: JobEnvironment) -> None:
        stdin = piped_stdin() if file in (None, pipeline.STDIN) else None
        source = pipeline.read_pipeline_source(file, stdin=stdin, cwd=Path.cwd())
        document = pipeline.prepare_pipeline(source, env=None if no_interpolation else env.values)
        if dry_run:
            typer.echo(json.dumps(document, indent=2))
            return
        async with job_api(env) as api:
            await pipeline.upload_pipeline(
                api, job_id=env.job_id(job), document=document, replace=replace
            )
        _info(f"Uploaded the pipeline from {source.name}")

    _in_job(work)


@meta_data_app.command("set")
def meta_data_set(
    key: str = typer.Argument(..., help="The key."),
    value: str | None = typer.Argument(
        None, help="The value [default: read from stdin].", show_default=False
    ),
    job: str | None = _JOB_OPTION,
) -> None:
    """Set a meta-data value on the build."""
    text = value if value is not None else piped_stdin() or ""
    _with_api(
        lambda api, env: meta_data.set_meta_data(api, job_id=env.job_id(job), key=key, value=text)
    )


_METADATA_BUILD_OPTION = typer.Option(
    None,
    "--build",
    envvar="BUILDKITE_METADATA_BUILD_ID",
    help="Read another build's meta-data (its UUID).",
)


def _meta_data_scope(env: JobEnvironment, job: str | None, build: str | None) -> str:
    return meta_data.build_scope(build) if build else meta_data.job_scope(env.job_id(job))


@meta_data_app.command("get")
def meta_data_get(
    key: str = typer.Argument(..., help="The key."),
    default: str | None = typer.Option(
        None, "--default", help="Print this when the key is not set, instead of failing."
    ),
    job: str | None = _JOB_OPTION,
    build: str | None = _METADATA_BUILD_OPTION,
) -> None:
    """Print a meta-data value (exactly, with no newline added)."""

    async def work(api: AgentApi, env: JobEnvironment) -> str:
        scope = _meta_data_scope(env, job, build)
        value = await meta_data.get_meta_data(api, scope=scope, key=key)
        if value is not None:
            return value
        if default is not None:
            return default
        raise InJobError(f"No meta-data value for {key!r} (pass --default to allow that)")

    typer.echo(_with_api(work), nl=False)


@meta_data_app.command("exists")
def meta_data_exists(
    key: str = typer.Argument(..., help="The key."),
    job: str | None = _JOB_OPTION,
    build: str | None = _METADATA_BUILD_OPTION,
) -> None:
    """Exit 0 when the key is set, 100 when it is not."""
    exists = _with_api(
        lambda api, env: meta_data.meta_data_exists(
            api, scope=_meta_data_scope(env, job, build), key=key
        )
    )
    if not exists:
        raise typer.Exit(meta_data.NOT_FOUND_EXIT_CODE)


@meta_data_app.command("keys")
def meta_data_keys(
    job: str | None = _JOB_OPTION, build: str | None = _METADATA_BUILD_OPTION
) -> None:
    """Print the build's meta-data keys, one per line."""
    keys = _with_api(
        lambda api, env: meta_data.meta_data_keys(api, scope=_meta_data_scope(env, job, build))
    )
    for key in keys:
        typer.echo(key)


_SCOPE_OPTION = typer.Option(
    AnnotationScope.BUILD, "--scope", help="Annotate the whole build, or this job."
)


@app.command("annotate")
def annotate_command(
    body: str | None = typer.Argument(
        None, help="Markdown [default: read from stdin].", show_default=False
    ),
    style: AnnotationStyle | None = typer.Option(None, "--style", help="How it is shown."),
    context: str = typer.Option(
        "",
        "--context",
        help=f"Names the annotation to replace or append to [default: {DEFAULT_CONTEXT}].",
        show_default=False,
    ),
    append: bool = typer.Option(False, "--append", help="Add to the context's body."),
    priority: int = typer.Option(
        DEFAULT_PRIORITY, "--priority", help="1 to 10; higher shows first."
    ),
    scope: AnnotationScope = _SCOPE_OPTION,
    job: str | None = _JOB_OPTION,
) -> None:
    """Add or change an annotation on the build page."""
    annotation = Annotation(
        body=body if body is not None else piped_stdin() or "",
        style=style,
        context=context,
        append=append,
        priority=priority,
        scope=scope,
    )
    _with_api(lambda api, env: annotate(api, job_id=env.job_id(job), annotation=annotation))


@annotation_app.command("remove")
def annotation_remove(
    context: str = typer.Option(DEFAULT_CONTEXT, "--context", help="The annotation to remove."),
    scope: AnnotationScope = _SCOPE_OPTION,
    job: str | None = _JOB_OPTION,
) -> None:
    """Remove an annotation from the build page."""
    _with_api(
        lambda api, env: remove_annotation(
            api, job_id=env.job_id(job), context=context, scope=scope
        )
    )


@artifact_app.command("upload")
def artifact_upload(
    paths: str = typer.Argument(..., help='Globs separated by ";", e.g. "out/**/*.log;*.xml".'),
    destination: str | None = typer.Argument(
        None,
        envvar="BUILDKITE_ARTIFACT_UPLOAD_DESTINATION",
        help="Not supported: Kiteline keeps artifacts on its server.",
        show_default=False,
    ),
    job: str | None = _JOB_OPTION,
) -> None:
    """Upload files (relative to the current directory) as artifacts of the job."""
    _in_job(
        lambda env: upload_artifacts(
            env, paths, cwd=Path.cwd(), say=_info, destination=destination or "", job_id=job
        )
    )


_STEP_OPTION = typer.Option(None, "--step", help="Only artifacts of this step (key or id).")


@artifact_app.command("download")
def artifact_download_command(
    query: str = typer.Argument(..., help='Glob over artifact paths, e.g. "out/*.txt".'),
    destination: Path = typer.Argument(..., help="Directory to write them under (by path)."),
    step: str | None = _STEP_OPTION,
    build: str | None = _BUILD_OPTION,
) -> None:
    """Download the build's artifacts matching QUERY, checked against their checksums."""

    async def work(api: AgentApi, env: JobEnvironment) -> None:
        found = await artifact_download.search_artifacts(
            api, build_id=env.build_id(build), query=query, step=step
        )
        if not found:
            raise InJobError(f"No artifacts match {query!r}")
        await artifact_download.download_artifacts(api, found, destination=destination, say=_info)

    _with_api(work)


@artifact_app.command("shasum")
def artifact_shasum(
    query: str = typer.Argument(..., help="Glob matching exactly one artifact."),
    sha256: bool = typer.Option(False, "--sha256", help="Print the SHA-256 instead of SHA-1."),
    step: str | None = _STEP_OPTION,
    build: str | None = _BUILD_OPTION,
) -> None:
    """Print the checksum of the one artifact matching QUERY."""

    async def work(api: AgentApi, env: JobEnvironment) -> str:
        found = await artifact_download.search_artifacts(
            api, build_id=env.build_id(build), query=query, step=step
        )
        return artifact_download.checksum(
            artifact_download.single_artifact(found, query), sha256=sha256
        )

    typer.echo(_with_api(work))


@step_app.command("get")
def step_get(
    attribute: str = typer.Argument(..., help="outcome, state, label, key, id, command or type."),
    step: str | None = typer.Option(
        None, "--step", help="Step key or id [default: $BUILDKITE_STEP_ID].", show_default=False
    ),
    build: str | None = _BUILD_OPTION,
    output_format: str | None = typer.Option(
        None, "--format", help="json: print the value as JSON."
    ),
) -> None:
    """Print an attribute of a step of the build."""
    output = _with_api(
        lambda api, env: step_attribute(
            api,
            step=env.step_id(step),
            attribute=attribute,
            build_id=env.build_id(build),
            output_format=output_format,
        )
    )
    typer.echo(output)


@redactor_app.command("add")
def redactor_add(
    file: Path | None = typer.Argument(
        None, help="Read the value from this file [default: stdin].", show_default=False
    ),
    input_format: RedactionFormat = typer.Option(
        RedactionFormat.NONE, "--format", help="none: the input is one value; json: an object."
    ),
) -> None:
    """Redact a value from the rest of this job's log."""
    with _errors_exit():
        try:
            text = file.read_text() if file else piped_stdin() or ""
        except OSError as error:
            raise InJobError(f"Could not read {file}: {error.strerror}") from error
        add_redactions(JobEnvironment(dict(os.environ)), text, input_format=input_format)
