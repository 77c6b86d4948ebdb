"""A build's jobs: get one, its log (whole or followed while it runs), env, retry, unblock."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any

from kiteline.client._effects import (
    Op,
    Sleep,
    Stream,
    get_json,
    get_model,
    request,
    send,
    write_model,
)
from kiteline.client.config import ClientConfig
from kiteline.client.models import Job
from kiteline.client.operations.builds import build_url


def _url(
    config: ClientConfig, org: str | None, pipeline: str, number: int, job_id: str, *more: str
) -> str:
    return build_url(config, org, pipeline, number, "jobs", job_id, *more)


def job(
    config: ClientConfig, pipeline: str, number: int, job_id: str, *, org: str | None = None
) -> Op[Job]:
    return (yield from get_model(config, _url(config, org, pipeline, number, job_id), Job))


def _raw_log(config: ClientConfig, url: str) -> Op[bytes]:
    response = yield from send(config, request(config, "GET", url, accept="text/plain"))
    return response.content


def job_log(
    config: ClientConfig, pipeline: str, number: int, job_id: str, *, org: str | None = None
) -> Op[str]:
    """The job's log as plain text, as far as it has been written."""
    url = _url(config, org, pipeline, number, job_id, "log")
    return (yield from _raw_log(config, url)).decode("utf-8", "replace")


def stream_log(
    config: ClientConfig,
    pipeline: str,
    number: int,
    job_id: str,
    *,
    org: str | None = None,
    poll_interval: float = 1.0,
) -> Stream[str]:
    """The job's log text as it arrives: each item is what was added since the last one.
    Ends once the job has finished and the rest of its log has been yielded."""
    log_url = _url(config, org, pipeline, number, job_id, "log")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    offset = 0
    while True:
        # The job's state is read before its log, so that the log read after a finished
        # state is complete.
        done = (yield from job(config, pipeline, number, job_id, org=org)).finished
        content = yield from _raw_log(config, log_url)
        text = decoder.decode(content[offset:], final=done)
        offset = max(offset, len(content))
        if text:
            yield text
        if done:
            return
        yield Sleep(poll_interval)


def job_env(
    config: ClientConfig, pipeline: str, number: int, job_id: str, *, org: str | None = None
) -> Op[dict[str, str]]:
    """The environment the job ran with (needs `read_job_env`)."""
    body = yield from get_json(config, _url(config, org, pipeline, number, job_id, "env"))
    return dict(body.get("env") or {})


def retry_job(
    config: ClientConfig, pipeline: str, number: int, job_id: str, *, org: str | None = None
) -> Op[Job]:
    """Run a failed, timed-out or canceled job again; returns the new job."""
    url = _url(config, org, pipeline, number, job_id, "retry")
    return (yield from write_model(config, "PUT", url, Job, None))


def unblock_job(
    config: ClientConfig,
    pipeline: str,
    number: int,
    job_id: str,
    *,
    fields: Mapping[str, Any] | None = None,
    unblocker: str | None = None,
    org: str | None = None,
) -> Op[Job]:
    """Unblock a block step, answering its input `fields`; `unblocker` is a user id."""
    body: dict[str, Any] = {"fields": dict(fields or {})}
    if unblocker is not None:
        body["unblocker"] = unblocker
    url = _url(config, org, pipeline, number, job_id, "unblock")
    return (yield from write_model(config, "PUT", url, Job, body))
