"""`kiteline artifact …`: list a build's (or a job's) artifacts and download them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kiteline.cli.api import (
    NUMBER,
    PIPELINE,
    Api,
    api_command,
    dump_all,
)
from kiteline.cli.display import (
    state_text,
)
from kiteline.cli.output import fail
from kiteline.client import Artifact

app = typer.Typer(
    rich_markup_mode=None, help="List and download build artifacts", no_args_is_help=True
)

JOB = typer.Option(None, "--job", help="Only this job's artifacts (its ID).")


@app.command("list")
@api_command()
def list_artifacts(
    api: Api,
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job: str | None = JOB,
) -> None:
    """A build's artifacts, or one job's."""
    with api.connect() as client:
        artifacts = list(client.artifacts(pipeline, number, job_id=job))
    api.show(
        dump_all("artifacts", artifacts),
        view=lambda: _table(artifacts) if artifacts else "no artifacts",
    )


@app.command("download")
@api_command()
def download(
    api: Api,
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    pattern: str = typer.Option(
        "*", "--pattern", help="Only artifacts whose path matches this glob (`*` crosses `/`)."
    ),
    dest: Path = typer.Option(Path("."), "--dest", help="Directory to write them under."),
    job: str | None = JOB,
) -> None:
    """Download artifacts into DEST at their paths, each checked against its SHA-1."""
    with api.connect() as client:
        written = client.download_artifacts(pipeline, number, pattern, dest, job_id=job)
    if not written:
        raise fail(f"no uploaded artifact of {pipeline} #{number} matches {pattern!r}")
    files = [str(path) for path in written]
    api.show({"files": files}, view=lambda: Text("\n".join(files)))


def _table(artifacts: Iterable[Artifact]) -> Group:
    """One table per job under a "Job <id>" line: with the job's ID out of the rows, a path,
    its size, state and artifact ID fit 80 columns whole."""
    by_job: dict[str, list[Artifact]] = {}
    for artifact in artifacts:
        by_job.setdefault(artifact.job_id or "", []).append(artifact)
    parts: list[RenderableType] = []
    for job_id, listed in by_job.items():
        parts.append(Text(f"Job {job_id}" if job_id else "No job", style="bold"))
        table = Table(box=None, pad_edge=False)
        table.add_column("Path")
        table.add_column("Size", justify="right", no_wrap=True)
        table.add_column("State", no_wrap=True)
        table.add_column("ID", no_wrap=True)
        for artifact in listed:
            table.add_row(
                Text(artifact.path),
                "" if artifact.file_size is None else _size(artifact.file_size),
                state_text(artifact.state),
                artifact.id,
            )
        parts.append(table)
    return Group(*parts)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
