"""`pipeline upload`: read, interpolate and validate a pipeline, then add its steps to the build."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from kiteline.agent.api import IN_JOB, AgentApi, ApiError, ApiResponse, decode, path_id
from kiteline.agent.in_job.context import InJobError
from kiteline.pipeline import PipelineError, interpolate_pipeline, parse_pipeline
from kiteline.pipeline.document import load_document

STDIN = "-"
DEFAULT_FILES = (
    ".buildkite/pipeline.yml",
    ".buildkite/pipeline.yaml",
    ".buildkite/pipeline.json",
    "buildkite.yml",
    "buildkite.yaml",
    "buildkite.json",
)
# An asynchronous (202) upload is polled until applied: first after Retry-After (default 1 s),
# then every 5 s (or Retry-After), at most this many times.
STATUS_POLLS = 60
FIRST_POLL_SECONDS = 1.0
POLL_SECONDS = 5.0
PENDING_STATES = frozenset({"pending", "processing"})


@dataclass(frozen=True)
class PipelineSource:
    name: str
    """The file it came from, or `(stdin)`: how errors name it."""
    text: str


class PipelineUploadStatus(ApiResponse):
    state: str = ""
    message: str | None = None


def read_pipeline_source(file: str | None, *, stdin: str | None, cwd: Path) -> PipelineSource:
    """FILE; stdin for `-` or when something was piped in; else the first default file."""
    if file == STDIN or (file is None and stdin is not None):
        if stdin is None:
            raise InJobError("The pipeline file is `-` (stdin), but nothing was piped in")
        return PipelineSource("(stdin)", stdin)
    if file is not None:
        return _read_file(cwd / file, shown=file)
    for name in DEFAULT_FILES:
        if (cwd / name).is_file():
            return _read_file(cwd / name, shown=name)
    raise InJobError(
        f"No pipeline to upload: name a file, pipe one in, or create one of "
        f"{', '.join(DEFAULT_FILES)} in {cwd}"
    )


def prepare_pipeline(source: PipelineSource, *, env: Mapping[str, str] | None) -> Any:
    """The document to send: interpolated with `env` (None: left as written), decoded and
    validated as the server will validate it."""
    try:
        document = load_document(source.text)
        if env is not None:
            document = interpolate_pipeline(document, env)
        parse_pipeline(document)
    except PipelineError as error:
        problems = "\n".join(f"  {issue}" for issue in error.issues)
        raise InJobError(f"The pipeline in {source.name} is invalid:\n{problems}") from error
    try:
        json.dumps(document)
    except (TypeError, ValueError) as error:
        raise InJobError(
            f"The pipeline in {source.name} has a value JSON can't hold: {error}"
        ) from error
    return document


async def upload_pipeline(
    api: AgentApi, *, job_id: str, document: Any, replace: bool, upload_id: str | None = None
) -> None:
    """`POST jobs/{job}/pipelines`, idempotent per upload uuid (the same on every retry); a
    202 answer is followed by polling the upload's state until the server has applied it."""
    upload_id = upload_id or str(uuid.uuid4())
    body: dict[str, Any] = {"uuid": upload_id, "pipeline": document}
    if replace:
        body["replace"] = True
    try:
        response = await api.call(
            "POST",
            f"jobs/{path_id(job_id)}/pipelines",
            IN_JOB,
            json=body,
            params={"async": "true"},
            backoff_sequence=True,
        )
        if response.status_code == 202:
            _check_location(response, job_id=job_id, upload_id=upload_id)
            await _wait_until_applied(
                api, job_id, upload_id, first_wait=_retry_after(response, FIRST_POLL_SECONDS)
            )
    except ApiError as error:
        if error.status == 422:
            raise InJobError(f"The server refused the pipeline: {error.reason}") from error
        raise


def _read_file(path: Path, *, shown: str) -> PipelineSource:
    try:
        return PipelineSource(shown, path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise InJobError(f"Could not read the pipeline file {shown}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise InJobError(f"The pipeline file {shown} is not UTF-8 text") from error


def _check_location(response: httpx.Response, *, job_id: str, upload_id: str) -> None:
    location = unquote(httpx.URL(response.headers.get("Location", "")).path)
    if f"jobs/{job_id}/pipelines/{upload_id}" not in location:
        raise InJobError(
            f"The server accepted the upload for later but its Location ({location or 'none'}) "
            f"does not name jobs/{job_id}/pipelines/{upload_id}"
        )


async def _wait_until_applied(
    api: AgentApi, job_id: str, upload_id: str, *, first_wait: float
) -> None:
    wait = first_wait
    for _ in range(STATUS_POLLS):
        await asyncio.sleep(wait)
        response = await api.call(
            "GET",
            f"jobs/{path_id(job_id)}/pipelines/{path_id(upload_id)}",
            IN_JOB,
            backoff_sequence=True,
        )
        status = decode(PipelineUploadStatus, response)
        if status.state == "applied":
            return
        if status.state not in PENDING_STATES:
            raise InJobError(
                f"The server did not apply the pipeline ({status.state or 'no state'}): "
                f"{status.message or 'no reason given'}"
            )
        wait = _retry_after(response, POLL_SECONDS)
    raise InJobError(
        f"The server had not applied the pipeline after {STATUS_POLLS} status checks; "
        f"upload {upload_id} may still be processing"
    )


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return default
