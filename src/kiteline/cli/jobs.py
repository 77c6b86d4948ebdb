"""`kiteline job …`: a job's log (whole or followed), retrying it, unblocking a block step."""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from kiteline.cli.api import (
    JSON_OPTION,
    NUMBER,
    ORG,
    PIPELINE,
    TOKEN,
    URL,
    connect,
    dump,
    show,
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
def log(
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job_id: str = JOB,
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing as the job writes, until it finishes."
    ),
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a job's log as it was written (escape codes included)."""
    with connect(url, token, org) as client:
        if as_json:
            if follow:
                content = "".join(client.stream_log(pipeline, number, job_id))
            else:
                content = client.job_log(pipeline, number, job_id)
            show({"job_id": job_id, "content": content}, as_json=True, view=lambda: content)
        elif follow:
            for chunk in client.stream_log(pipeline, number, job_id):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:
            sys.stdout.write(client.job_log(pipeline, number, job_id))


@app.command("retry")
def retry(
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job_id: str = JOB,
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a failed, timed-out or canceled job again, as a new job."""
    with connect(url, token, org) as client:
        job = client.retry_job(pipeline, number, job_id)
    show(
        dump(job),
        as_json=as_json,
        view=lambda: Text.assemble(
            "Retried ", (job_label(job), "bold"), f" as {job.id} ", state_text(job.state)
        ),
    )


@app.command("unblock")
def unblock(
    pipeline: str = PIPELINE,
    number: int = NUMBER,
    job_id: str = JOB,
    field: list[str] | None = typer.Option(
        None, "--field", help="KEY=VALUE answering one of the block step's fields (repeat)."
    ),
    url: str | None = URL,
    token: str | None = TOKEN,
    org: str | None = ORG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Unblock a block step, so that the steps after it run."""
    fields = key_values(field, "--field")
    with connect(url, token, org) as client:
        job = client.unblock_job(pipeline, number, job_id, fields=fields)
    show(
        dump(job),
        as_json=as_json,
        view=lambda: Text.assemble(
            "Unblocked ", (job_label(job), "bold"), " ", state_text(job.state)
        ),
    )
