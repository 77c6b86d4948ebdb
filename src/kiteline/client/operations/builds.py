"""Builds: lists in three scopes, one build, trigger, cancel, rebuild, and waiting for one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from kiteline.client._effects import Op, Sleep, Stream, get_model, write_model
from kiteline.client._pages import paginate
from kiteline.client._query import encode
from kiteline.client.config import ClientConfig
from kiteline.client.errors import BuildTimeout
from kiteline.client.models import Build

#: Polls grow by this factor while nothing changes, and start over when something does.
BACKOFF_FACTOR = 1.5
When = datetime | date | str


def build_url(config: ClientConfig, org: str | None, pipeline: str, number: int, *more: str) -> str:
    """`…/organizations/{org}/pipelines/{pipeline}/builds/{number}`, then `more` segments."""
    segments = ("organizations", config.organization(org), "pipelines", pipeline, "builds")
    return config.rest(*segments, number, *more)


def builds(
    config: ClientConfig,
    pipeline: str | None = None,
    *,
    org: str | None = None,
    state: str | Sequence[str] | None = None,
    branch: str | Sequence[str] | None = None,
    commit: str | Sequence[str] | None = None,
    creator: str | None = None,
    created_from: When | None = None,
    created_to: When | None = None,
    finished_from: When | None = None,
    meta_data: Mapping[str, str] | None = None,
    include_retried_jobs: bool | None = None,
    exclude_jobs: bool | None = None,
    exclude_pipeline: bool | None = None,
    per_page: int | None = None,
    **filters: Any,
) -> Stream[Build]:
    """Builds, newest first: of `pipeline` (in `org` or the default organization), else of
    `org` when given, else of every organization the token can see.

    Lists become `state[]=...`, `meta_data={"k": "v"}` becomes `meta_data[k]=v`; any other
    keyword is sent as a query parameter the same way.
    """
    if pipeline is not None:
        url = config.rest(
            "organizations", config.organization(org), "pipelines", pipeline, "builds"
        )
    elif org is not None:
        url = config.rest("organizations", org, "builds")
    else:
        url = config.rest("builds")
    query = {
        "state": state,
        "branch": branch,
        "commit": commit,
        "creator": creator,
        "created_from": created_from,
        "created_to": created_to,
        "finished_from": finished_from,
        "meta_data": meta_data,
        "include_retried_jobs": include_retried_jobs,
        "exclude_jobs": exclude_jobs,
        "exclude_pipeline": exclude_pipeline,
        **filters,
    }
    yield from paginate(config, url, Build, query, per_page)


def build(
    config: ClientConfig,
    pipeline: str,
    number: int,
    *,
    org: str | None = None,
    include_retried_jobs: bool | None = None,
    **params: Any,
) -> Op[Build]:
    """One build by its number in the pipeline (`exclude_jobs=True` and the like pass on)."""
    url = build_url(config, org, pipeline, number)
    query = encode({"include_retried_jobs": include_retried_jobs, **params})
    return (yield from get_model(config, url, Build, query))


def trigger_build(
    config: ClientConfig,
    pipeline: str,
    commit: str = "HEAD",
    branch: str = "main",
    *,
    message: str | None = None,
    env: Mapping[str, str] | None = None,
    meta_data: Mapping[str, str] | None = None,
    org: str | None = None,
    **extra: Any,
) -> Op[Build]:
    """Start a build; `extra` fields (`author`, `clean_checkout`, `pull_request_id`, ...)
    are sent as given."""
    body = {
        "commit": commit,
        "branch": branch,
        "message": message,
        "env": dict(env) if env is not None else None,
        "meta_data": dict(meta_data) if meta_data is not None else None,
        **extra,
    }
    url = config.rest("organizations", config.organization(org), "pipelines", pipeline, "builds")
    given = {key: value for key, value in body.items() if value is not None}
    return (yield from write_model(config, "POST", url, Build, given))


def cancel_build(
    config: ClientConfig, pipeline: str, number: int, *, org: str | None = None
) -> Op[Build]:
    """Cancel a scheduled, running or failing build (`Unprocessable` otherwise)."""
    url = build_url(config, org, pipeline, number, "cancel")
    return (yield from write_model(config, "PUT", url, Build, None))


def rebuild_build(
    config: ClientConfig, pipeline: str, number: int, *, org: str | None = None
) -> Op[Build]:
    """Run the build again; returns the new build."""
    url = build_url(config, org, pipeline, number, "rebuild")
    return (yield from write_model(config, "PUT", url, Build, None))


def _progress(build: Build) -> tuple[Any, ...]:
    return (build.state, tuple((job.id, job.state) for job in build.jobs))


def wait_for_build(
    config: ClientConfig,
    pipeline: str,
    number: int,
    *,
    org: str | None = None,
    timeout: float | None = 600.0,
    poll_interval: float = 1.0,
    max_poll_interval: float = 15.0,
    on_progress: Callable[[Build], object] | None = None,
) -> Op[Build]:
    """Poll the build until `finished_at` is set and return it; `on_progress` sees every poll.

    Polls start `poll_interval` apart and back off to `max_poll_interval` while nothing
    changes (state, jobs' states), starting over when something does. Raises `BuildTimeout`
    (a `TimeoutError`) after `timeout` seconds; None waits for ever.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    interval, seen = poll_interval, None
    while True:
        current = yield from build(config, pipeline, number, org=org)
        if on_progress is not None:
            on_progress(current)
        if current.finished:
            return current
        progress = _progress(current)
        if progress != seen:
            interval, seen = poll_interval, progress
        else:
            interval = min(interval * BACKOFF_FACTOR, max_poll_interval)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise BuildTimeout(
                f"build {pipeline}#{number} did not finish within {timeout:g}s; "
                f"it is {current.state}",
                build=current,
            )
        yield Sleep(interval if left is None else min(interval, left))
