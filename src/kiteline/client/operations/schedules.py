"""Pipeline schedules, through GraphQL (Buildkite has no REST for them): list, create, update,
delete. Each schedule is the dict GraphQL answers (`id`, `uuid`, `cronline`, `nextBuildAt`…)."""

from __future__ import annotations

import base64
from typing import Any

from kiteline.client._effects import Op
from kiteline.client.config import ClientConfig
from kiteline.client.errors import GraphQLError
from kiteline.client.operations.graphql import graphql

FIELDS = (
    "id uuid label cronline branch commit message env enabled nextBuildAt failedAt failedMessage"
)

_LIST = f"""
query Schedules($slug: ID!) {{
  pipeline(slug: $slug) {{ id schedules(first: 500) {{ edges {{ node {{ {FIELDS} }} }} }} }}
}}"""
_CREATE = f"""
mutation CreateSchedule($input: PipelineScheduleCreateInput!) {{
  pipelineScheduleCreate(input: $input) {{ pipelineScheduleEdge {{ node {{ {FIELDS} }} }} }}
}}"""
_UPDATE = f"""
mutation UpdateSchedule($input: PipelineScheduleUpdateInput!) {{
  pipelineScheduleUpdate(input: $input) {{ pipelineSchedule {{ {FIELDS} }} }}
}}"""
_DELETE = """
mutation DeleteSchedule($input: PipelineScheduleDeleteInput!) {
  pipelineScheduleDelete(input: $input) { deletedPipelineScheduleID }
}"""


def schedule_id(schedule: str) -> str:
    """A schedule's GraphQL id from its UUID (an id passes through)."""
    if len(schedule) == 36 and schedule.count("-") == 4:
        return base64.b64encode(f"PipelineSchedule---{schedule}".encode()).decode()
    return schedule


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    given = {key: value for key, value in fields.items() if value is not None}
    if isinstance(given.get("env"), dict):
        given["env"] = "\n".join(f"{key}={value}" for key, value in given["env"].items())
    return given


def _pipeline(config: ClientConfig, pipeline: str, org: str | None) -> Op[dict[str, Any]]:
    slug = f"{config.organization(org)}/{pipeline}"
    data = yield from graphql(config, _LIST, {"slug": slug})
    if data.get("pipeline") is None:
        raise GraphQLError([{"message": f"No pipeline {slug!r} found"}], data)
    found: dict[str, Any] = data["pipeline"]
    return found


def schedules(
    config: ClientConfig, pipeline: str, *, org: str | None = None
) -> Op[list[dict[str, Any]]]:
    """The pipeline's schedules, oldest first."""
    found = yield from _pipeline(config, pipeline, org)
    return [edge["node"] for edge in found["schedules"]["edges"]]


def create_schedule(
    config: ClientConfig,
    pipeline: str,
    *,
    cronline: str,
    org: str | None = None,
    label: str | None = None,
    branch: str | None = None,
    commit: str | None = None,
    message: str | None = None,
    env: dict[str, str] | None = None,
    enabled: bool = True,
) -> Op[dict[str, Any]]:
    """A new schedule: `cronline` is five cron fields or `@daily`-style, then an optional
    time zone (`0 3 * * * Europe/Berlin`)."""
    found = yield from _pipeline(config, pipeline, org)
    given = _fields(
        {
            "label": label,
            "cronline": cronline,
            "branch": branch,
            "commit": commit,
            "message": message,
            "env": env,
            "enabled": enabled,
        }
    )
    data = yield from graphql(config, _CREATE, {"input": {"pipelineID": found["id"], **given}})
    created: dict[str, Any] = data["pipelineScheduleCreate"]["pipelineScheduleEdge"]["node"]
    return created


def update_schedule(config: ClientConfig, schedule: str, **fields: Any) -> Op[dict[str, Any]]:
    """Change the given fields (label, cronline, branch, commit, message, env, enabled)."""
    variables = {"input": {"id": schedule_id(schedule), **_fields(fields)}}
    data = yield from graphql(config, _UPDATE, variables)
    updated: dict[str, Any] = data["pipelineScheduleUpdate"]["pipelineSchedule"]
    return updated


def delete_schedule(config: ClientConfig, schedule: str) -> Op[None]:
    yield from graphql(config, _DELETE, {"input": {"id": schedule_id(schedule)}})
