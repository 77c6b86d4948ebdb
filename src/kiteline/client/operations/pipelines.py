"""Pipelines of an organization: list, get, create, update, delete."""

from __future__ import annotations

from typing import Any

from kiteline.client._effects import Op, Stream, get_model, write, write_model
from kiteline.client._pages import paginate
from kiteline.client.config import ClientConfig
from kiteline.client.models import Pipeline


def _url(config: ClientConfig, org: str | None, *slug: str) -> str:
    return config.rest("organizations", config.organization(org), "pipelines", *slug)


def pipelines(
    config: ClientConfig,
    *,
    org: str | None = None,
    name: str | None = None,
    repository: str | None = None,
    per_page: int | None = None,
    **filters: Any,
) -> Stream[Pipeline]:
    """The organization's pipelines; `name` and `repository` match parts, ignoring case."""
    filters = {"name": name, "repository": repository, **filters}
    yield from paginate(config, _url(config, org), Pipeline, filters, per_page)


def pipeline(config: ClientConfig, slug: str, *, org: str | None = None) -> Op[Pipeline]:
    return (yield from get_model(config, _url(config, org, slug), Pipeline))


def create_pipeline(
    config: ClientConfig,
    name: str,
    *,
    configuration: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    repository: str | None = None,
    org: str | None = None,
    **fields: Any,
) -> Op[Pipeline]:
    """A new pipeline from a YAML `configuration` (or visual `steps`); other fields such as
    `slug`, `description`, `default_branch` or `env` pass through as given."""
    given = {
        "configuration": configuration,
        "steps": steps,
        "repository": repository,
        **fields,
    }
    body = {"name": name, **{key: value for key, value in given.items() if value is not None}}
    return (yield from write_model(config, "POST", _url(config, org), Pipeline, body))


def update_pipeline(
    config: ClientConfig, slug: str, *, org: str | None = None, **fields: Any
) -> Op[Pipeline]:
    """Change the given fields (`description=...`, `configuration=...`); None clears one."""
    return (yield from write_model(config, "PATCH", _url(config, org, slug), Pipeline, fields))


def delete_pipeline(config: ClientConfig, slug: str, *, org: str | None = None) -> Op[None]:
    yield from write(config, "DELETE", _url(config, org, slug))
