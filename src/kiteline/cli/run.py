"""`kiteline run`: a pipeline run on this machine with nothing to set up — an embedded server
on a throwaway SQLite database, local agents, the current git repository as the checkout, the
jobs shown live, block steps answered at the terminal, artifacts saved to a folder."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import typer
import uvicorn
from rich.console import Console
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.agent.config import parse_tags
from kiteline.agent.in_job.pipeline import DEFAULT_FILES
from kiteline.cli import output, up
from kiteline.cli.credentials import DEFAULT_DATA_DIR
from kiteline.cli.display import (
    build_state,
    duration,
    job_label,
    key_values,
    shown_jobs,
    state_text,
)
from kiteline.cli.output import console, errors, fail
from kiteline.cli.run_display import BuildView
from kiteline.cli.run_follow import Follower
from kiteline.cli.run_git import GitError, Snapshot, find_repository, is_ignored, snapshot
from kiteline.client import AsyncClient, KitelineClientError
from kiteline.client.models import Build
from kiteline.client.operations.artifacts import artifact_destination
from kiteline.pairs import split_pair
from kiteline.server import admin
from kiteline.server.kit.scopes import SCOPES
from kiteline.settings import Settings

ORG = "local"
USER = "you@kiteline.local"
LOG_TAIL_LINES = 20
#: Ctrl-C, `kill`, and the terminal closing: each cancels the build and stops the agents (which
#: live in their own session, so nothing else would).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Exit status after Ctrl-C, as shells report a SIGINT.
INTERRUPTED = 130
USAGE_ERROR = 2

HELP = f"""Run a pipeline on this machine, with nothing to set up.

Starts a server on a temporary SQLite database and local agents, then runs PIPELINE_FILE
the way Buildkite does, with a first job that runs `buildkite-agent pipeline upload`.
Without PIPELINE_FILE, the first of these in the repository is run:
{", ".join(DEFAULT_FILES)}.

The checkout is the git repository you are in, as it is now (committed, uncommitted and
untracked files; ignored ones, the artifacts folder and .kiteline left out), captured
without touching your working tree.

The artifacts are saved under ~/.cache/kiteline/run (a folder per repository, emptied at the
start of each run), or in --artifacts DIR. Each job's checkout and the agent's own lines are
folded away unless the job fails, or with -v (`kiteline run -v`).

Block steps: on a terminal, each field is asked for; `--unblock KEY=VALUE` answers a field
without asking. Without a terminal, block steps are unblocked with the --unblock values and
the fields' defaults. A block left unanswered (a required field with no value, or "no" at
the prompt) stops the build there, as on Buildkite, and the run fails.

Exit status: 0 when the build passed, 1 when it failed or was canceled, 2 for a usage error,
130 after Ctrl-C (which cancels the build and stops everything)."""


@dataclass(frozen=True)
class Plan:
    """Everything decided before anything starts."""

    snapshot: Snapshot
    upload_path: str
    """The pipeline file as the upload job names it: in the checkout, or absolute."""
    shown_path: str
    env: dict[str, str]
    meta_data: dict[str, str]
    unblock: dict[str, str]
    agent_groups: list[dict[str, str]]
    """The tags of each group of local agents: one group per queue."""
    spawn: int
    data_dir: Path
    artifacts_dir: Path
    clear_artifacts: bool
    """The artifacts folder is the default one, emptied before this run's are saved."""
    interactive: bool
    verbose: bool


@dataclass
class Outcome:
    build: Build | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return INTERRUPTED
        passed = self.build is not None and self.build.state == "passed"
        return 0 if passed and self.error is None else 1


def run(
    pipeline_file: Path | None = typer.Argument(
        None, help="The pipeline to run (default: found in the repository).", show_default=False
    ),
    unblock: list[str] = typer.Option(
        [], "--unblock", metavar="KEY=VALUE", help="Answer a block step's field (repeatable)."
    ),
    env: list[str] = typer.Option(
        [], "--env", "-e", metavar="KEY=VALUE", help="A build environment variable (repeatable)."
    ),
    meta_data: list[str] = typer.Option(
        [], "--meta-data", "-m", metavar="KEY=VALUE", help="Build meta-data (repeatable)."
    ),
    artifacts: Path | None = typer.Option(
        None,
        "--artifacts",
        help="Where the build's artifacts are saved [default: a folder of this repository's "
        "under ~/.cache/kiteline/run].",
        show_default=False,
    ),
    spawn: int | None = typer.Option(
        None,
        "--spawn",
        min=1,
        help="Agents per queue, the jobs that run at once [default: the number of CPUs].",
        show_default=False,
    ),
    tag: list[str] = typer.Option(
        [],
        "--tag",
        metavar="KEY=VALUE",
        help="An agent tag (repeatable). Agents have queue=default; each --tag queue=NAME adds "
        "agents for that queue too.",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the server's data directory (database, logs, checkouts)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object at the end (the rest goes to stderr)."
    ),
) -> None:
    build_env = key_values(env, "--env")
    build_meta_data = key_values(meta_data, "--meta-data")
    answers = key_values(unblock, "--unblock")
    agent_groups = _agent_groups(tag)
    cwd = Path.cwd()
    try:
        root = find_repository(cwd)
    except GitError as error:
        raise fail(str(error), USAGE_ERROR) from error
    pipeline_path = _pipeline_file(root, cwd, pipeline_file)
    artifacts_dir = artifacts.absolute() if artifacts else _default_artifacts_dir(root)
    try:
        taken = snapshot(root, exclude=[artifacts_dir, root / DEFAULT_DATA_DIR])
    except GitError as error:
        raise fail(str(error)) from error
    shown_path = _shown(pipeline_path, root)
    data_dir = Path(tempfile.mkdtemp(prefix="kiteline-run-"))
    plan = Plan(
        snapshot=taken,
        upload_path=_upload_path(pipeline_path, root),
        shown_path=shown_path,
        env=build_env,
        meta_data=build_meta_data,
        unblock=answers,
        agent_groups=agent_groups,
        spawn=spawn or os.cpu_count() or 1,
        data_dir=data_dir,
        artifacts_dir=artifacts_dir,
        clear_artifacts=artifacts is None,
        interactive=sys.stdin.isatty(),
        verbose=output.verbose,
    )
    screen = errors if as_json else console
    try:
        outcome = asyncio.run(LocalRun(plan, screen).run())
    finally:
        if keep:
            screen.print(f"Kept the server's data in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    if as_json:
        typer.echo(json.dumps(_summary(plan, outcome, keep=keep)))
    raise typer.Exit(outcome.exit_code)


class LocalRun:
    """One build from start to finish: server, agents, pipeline, build, and the loop that
    follows it until it is over."""

    def __init__(self, plan: Plan, screen: Console) -> None:
        self.plan = plan
        self.screen = screen
        self.outcome = Outcome()
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._interrupt)
        agents: list[asyncio.subprocess.Process] = []
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await self._start(stack, agents)
                await self._build(client, agents)
        except (KitelineClientError, up.ServerDidNotStart) as error:
            self.outcome.error = f"The embedded server failed: {error or 'it did not start'}"
            self.screen.print(Text(self.outcome.error, style="red"), soft_wrap=True)
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        if any(process.returncode not in (0, None) for process in agents):
            self._agent_log_tail()
        return self.outcome

    async def _start(
        self, stack: contextlib.AsyncExitStack, agents: list[asyncio.subprocess.Process]
    ) -> AsyncClient:
        """Agents, then the server (stopped after them); a client for the server. The agents
        start first, their Python starting while the server does: their first requests wait
        in the bound socket's backlog until it serves."""
        settings = _settings(self.plan.data_dir)
        credentials = await admin.run_in_transaction(settings, _create_org)
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        served: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        stack.push_async_callback(lambda: asyncio.gather(*(up.stop_server(*s) for s in served)))
        agent_log = stack.enter_context((self.plan.data_dir / "agents.log").open("ab"))
        stack.push_async_callback(
            lambda: asyncio.gather(*(up.stop_agents(process) for process in agents))
        )
        for tags in self.plan.agent_groups:
            agents.append(await self._start_agents(url, credentials, tags, agent_log))
        served.append(await up.start_server(settings, sockets=[listener]))
        client = AsyncClient(url, credentials["api_token"], org=ORG)
        stack.push_async_callback(client.aclose)
        return client

    def _interrupt(self) -> None:
        if self.stop.is_set():
            self.force.set()
        self.stop.set()

    async def _start_agents(
        self, url: str, credentials: dict[str, Any], tags: dict[str, str], output: IO[bytes]
    ) -> asyncio.subprocess.Process:
        queue = tags["queue"]
        return await up.start_agents(
            url,
            credentials["agent_token"],
            count=self.plan.spawn,
            name="local-%spawn" if queue == "default" else f"local-{queue}-%spawn",
            build_path=self.plan.data_dir / "builds",
            tags=[f"{key}={value}" for key, value in tags.items()],
            env=_agent_env(),
            output=output,
        )

    async def _build(self, client: AsyncClient, agents: list[asyncio.subprocess.Process]) -> None:
        plan = self.plan
        pipeline = await client.create_pipeline(
            plan.snapshot.root.name or "local",
            configuration=_upload_configuration(plan.upload_path, plan.shown_path),
            repository=str(plan.snapshot.root),
        )
        build = await client.trigger_build(
            pipeline.slug,
            plan.snapshot.commit,
            plan.snapshot.branch,
            message=plan.snapshot.message,
            author=plan.snapshot.author,
            env=plan.env,
            meta_data=plan.meta_data,
        )
        self.screen.print(_introduction(plan, build.number), soft_wrap=True)
        title = f"Build #{build.number}"
        with BuildView(self.screen, title=title, verbose=plan.verbose) as view:
            follower = Follower(
                client,
                view,
                pipeline=pipeline.slug,
                number=build.number,
                agents=agents,
                agent_groups=plan.agent_groups,
                answers=plan.unblock,
                interactive=plan.interactive,
                stop=self.stop,
                force=self.force,
            )
            await follower.follow()
        self.outcome.build = follower.build
        self.outcome.error = follower.error
        self.outcome.interrupted = follower.interrupted
        if self.outcome.error:
            self.screen.print(Text(self.outcome.error, style="red"), soft_wrap=True)
        if self.force.is_set() or follower.build is None:
            return
        self.outcome.artifacts = await _download_artifacts(
            client, pipeline.slug, build.number, plan, self.screen
        )
        _conclusion(self.screen, follower.build, self.outcome)

    def _agent_log_tail(self) -> None:
        path = self.plan.data_dir / "agents.log"
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if lines:
            self.screen.print(Text("The agents' last log lines:", style="dim"))
            self.screen.print(Text("\n".join(lines), style="dim"), soft_wrap=True)


async def _download_artifacts(
    client: AsyncClient, pipeline: str, number: int, plan: Plan, screen: Console
) -> list[dict[str, Any]]:
    """Each uploaded artifact saved at its path under the artifacts folder, its SHA-1 checked."""
    directory = plan.artifacts_dir
    if plan.clear_artifacts:
        shutil.rmtree(directory, ignore_errors=True)
    saved = []
    async for artifact in client.artifacts(pipeline, number):
        if artifact.state != "finished":
            continue
        try:
            destination = artifact_destination(directory, artifact)
        except KitelineClientError:
            screen.print(
                f"Skipped the artifact {artifact.path!r}: it would land outside {directory}"
            )
            continue
        await client.download_artifact(artifact, destination)
        saved.append(
            {
                "path": artifact.path,
                "file": str(destination),
                "size": artifact.file_size,
                "sha1sum": artifact.sha1sum,
            }
        )
    return saved


def _introduction(plan: Plan, number: int) -> Text:
    taken = plan.snapshot
    where = f"{taken.branch} at {taken.commit[:10]}"
    if taken.dirty:
        where += " (with your uncommitted changes)"
    return Text.assemble(
        ("Running ", "bold"),
        (plan.shown_path, "bold cyan"),
        f" from {taken.root}, {where}, as build #{number}",
    )


def _conclusion(screen: Console, build: Build, outcome: Outcome) -> None:
    took = duration(build.started_at, build.finished_at)
    screen.print(
        Text.assemble(
            f"Build #{build.number} ",
            state_text(build_state(build), bold=True),
            f" in {took}" if took else "",
        )
    )
    for artifact in outcome.artifacts:
        screen.print(f"  artifact {artifact['path']} -> {artifact['file']}", soft_wrap=True)


def _summary(plan: Plan, outcome: Outcome, *, keep: bool) -> dict[str, Any]:
    build = outcome.build
    return {
        "number": build.number if build else None,
        "state": build.state if build else None,
        "blocked": bool(build and build.blocked),
        "branch": plan.snapshot.branch,
        "commit": plan.snapshot.commit,
        "uncommitted_changes": plan.snapshot.dirty,
        "jobs": [
            {
                "label": job_label(job),
                "type": job.type,
                "step_key": job.step_key,
                "state": job.state,
                "soft_failed": bool(job.soft_failed),
                "exit_status": job.exit_status,
                "retried": bool(job.retried),
            }
            for job in (shown_jobs(build) if build else [])
        ],
        "artifacts": outcome.artifacts,
        "artifacts_dir": str(plan.artifacts_dir),
        "agents_per_queue": plan.spawn,
        "data_dir": str(plan.data_dir) if keep else None,
        "error": outcome.error,
    }


# -- deciding the plan ----------------------------------------------------------------------


def _pipeline_file(root: Path, cwd: Path, given: Path | None) -> Path:
    if given is not None:
        path = (cwd / given).absolute()
        if not path.is_file():
            raise fail(f"The pipeline file {given} does not exist", USAGE_ERROR)
        return path
    for name in DEFAULT_FILES:
        if (root / name).is_file():
            return root / name
    raise fail(
        f"No pipeline to run: name a file, or create one of {', '.join(DEFAULT_FILES)} in {root}",
        USAGE_ERROR,
    )


def _upload_path(path: Path, root: Path) -> str:
    """Inside the repository, the file as the checkout has it; elsewhere (or ignored by git,
    so not in the checkout) the file itself: the agent runs on this machine."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return str(path.resolve())
    if is_ignored(root, relative):
        return str(path.resolve())
    return relative.as_posix()


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _upload_configuration(upload_path: str, shown_path: str) -> str:
    """The step every Buildkite pipeline starts with; JSON is YAML. Saved steps are
    interpolated when the build is created, so a `$` in a path is written `$$`."""
    step = {
        "label": f":pipeline: Upload {shown_path}".replace("$", "$$"),
        "command": f"buildkite-agent pipeline upload {shlex.quote(upload_path)}".replace("$", "$$"),
    }
    return json.dumps({"steps": [step]}, indent=2)


def _agent_groups(tags: list[str]) -> list[dict[str, str]]:
    """queue=default agents, and agents for each other queue named; every other tag on all."""
    try:
        parsed = parse_tags(",".join(tags))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--tag") from error
    queues = ["default"]
    others: dict[str, str] = {}
    for tag in parsed:  # one at a time: each queue=NAME adds a queue
        key, value = split_pair(tag)
        if key == "queue":
            queues.append(value)
        else:
            others[key] = value
    return [{"queue": queue, **others} for queue in dict.fromkeys(queues)]


def _default_artifacts_dir(root: Path) -> Path:
    """A folder of this repository's in the user's cache: outside the repository, so that no
    ignore rule is needed, and one per repository (named after it, told apart by its path)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(str(root.resolve()).encode(), usedforsecurity=False).hexdigest()[:8]
    return cache / "kiteline" / "run" / f"{root.name or 'repository'}-{digest}" / "artifacts"


def _settings(data_dir: Path) -> Settings:
    """The embedded server: everything in the temporary data dir, whatever KITELINE_* says,
    and no rate limit (the run polls)."""
    return Settings(
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        blob_dir=None,
        secret_key=None,
        public_url=None,
        host="127.0.0.1",
        port=0,
        rate_limit_org_per_minute=0,
        rate_limit_user_per_minute=0,
    )


def _agent_env() -> dict[str, str]:
    """This environment without Buildkite's and Kiteline's variables: a `kiteline run` inside
    a CI job must not hand that job's agent endpoint, tokens or settings to its own agents."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BUILDKITE_", "KITELINE_"))
    }


async def _create_org(session: AsyncSession) -> dict[str, Any]:
    await admin.create_org(session, ORG, "Local")
    await admin.create_user(session, USER, "You", ORG)
    token = await admin.create_token(session, USER, list(SCOPES), "kiteline run")
    agent = await admin.create_agent_token(session, ORG, "kiteline run")
    return {"api_token": token["token"], "agent_token": agent["token"]}
