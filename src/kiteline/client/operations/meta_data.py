"""A build's meta-data over REST: list, get and set keys.

These routes are the ones Kiteline serves (as its reference documents them); Buildkite's REST
API has none, and a Buildkite build's meta-data is read from `Build.meta_data` instead.
"""

from __future__ import annotations

from kiteline.client._effects import Op, get_json, write
from kiteline.client.config import ClientConfig
from kiteline.client.operations.builds import build_url


def meta_data(
    config: ClientConfig, pipeline: str, number: int, *, org: str | None = None
) -> Op[dict[str, str]]:
    """Every meta-data key of the build and its value."""
    body = yield from get_json(config, build_url(config, org, pipeline, number, "meta-data"))
    return {str(key): str(value) for key, value in body.items()}


def get_meta_data(
    config: ClientConfig, pipeline: str, number: int, key: str, *, org: str | None = None
) -> Op[str]:
    """One key's value; `NotFound` when the build has no such key."""
    url = build_url(config, org, pipeline, number, "meta-data", key)
    return str((yield from get_json(config, url))["value"])


def set_meta_data(
    config: ClientConfig,
    pipeline: str,
    number: int,
    key: str,
    value: str,
    *,
    org: str | None = None,
) -> Op[None]:
    url = build_url(config, org, pipeline, number, "meta-data")
    yield from write(config, "POST", url, {"key": key, "value": value})
