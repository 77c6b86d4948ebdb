"""`kiteline job …`: a job's log (whole or followed), retrying it, unblocking a block step."""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from kiteline.cli.api import (
    NUMBER,
    PIPELINE,
    Api,
    api_command,
    dump,
)
from kiteline.cli.display import (
    job_label,
    key_values,
    state_text,
)

app = typer.Typer(
    rich_markup_mode=None, help="Read a job's log, retry it, unblock it", no_args_is_help=True
)

JOB = typer.Argument(..., help="The job's ID (see `kiteline build view`).")


@app.command("log")
@api_command()
def log(
    api: Api,
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job_id: str = JOB,
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing as the job writes, until it finishes."
    ),
) -> None:
    """Print a job's log as it was written (escape codes included)."""
    with api.connect() as client:
        if api.as_json:
            if follow:
                content = "".join(client.stream_log(pipeline, number, job_id))
            else:
                content = client.job_log(pipeline, number, job_id)
            api.show({"job_id": job_id, "content": content}, view=lambda: content)
        elif follow:
            for chunk in client.stream_log(pipeline, number, job_id):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:
            sys.stdout.write(client.job_log(pipeline, number, job_id))


@app.command("retry")
@api_command()
def retry(api: Api, pipeline: str = PIPELINE, number: int = NUMBER, job_id: str = JOB) -> None:
    """Run a failed, timed-out or canceled job again, as a new job."""
    with api.connect() as client:
        job = client.retry_job(pipeline, number, job_id)
    api.show(
        dump(job),
        view=lambda: Text.assemble(
            "Retried ", (job_label(job), "bold"), f" as {job.id} ", state_text(job.state)
        ),
    )


@app.command("unblock")
@api_command()
def unblock(
    api: Api,
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job_id: str = JOB,
    field: list[str] | None = typer.Option(
        None, "--field", help="KEY=VALUE answering one of the block step's fields (repeat)."
    ),
) -> None:
    """Unblock a block step, so that the steps after it run."""
    fields = key_values(field, "--field")
    with api.connect() as client:
        job = client.unblock_job(pipeline, number, job_id, fields=fields)
    api.show(
        dump(job),
        view=lambda: Text.assemble(
            "Unblocked ", (job_label(job), "bold"), " ", state_text(job.state)
        ),
    )
