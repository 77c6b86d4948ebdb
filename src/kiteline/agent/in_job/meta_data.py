"""`meta-data set|get|exists|keys`: the build's key/value store, reached through the job."""

from __future__ import annotations

from kiteline.agent.api import IN_JOB, AgentApi, ApiError, ApiResponse, decode, path_id
from kiteline.agent.in_job.context import InJobError

# `meta-data exists` exits with this when the key is not set, as buildkite-agent does.
NOT_FOUND_EXIT_CODE = 100


class MetaDataValue(ApiResponse):
    value: str


class MetaDataExists(ApiResponse):
    exists: bool


def job_scope(job_id: str) -> str:
    """The path prefix for a job's build: `jobs/{job}`."""
    return f"jobs/{path_id(job_id)}"


def build_scope(build_id: str) -> str:
    """The path prefix for a build named directly (`--build`): `builds/{build}`."""
    return f"builds/{path_id(build_id)}"


async def set_meta_data(api: AgentApi, *, job_id: str, key: str, value: str) -> None:
    if not key.strip():
        raise InJobError("The key cannot be empty or only whitespace")
    if not value.strip():
        raise InJobError(f"The value for {key!r} cannot be empty or only whitespace")
    await api.call(
        "POST", f"{job_scope(job_id)}/data/set", IN_JOB, json={"key": key, "value": value}
    )


async def get_meta_data(api: AgentApi, *, scope: str, key: str) -> str | None:
    """The value, or None when the key is not set (the server answers 404)."""
    try:
        response = await api.call("POST", f"{scope}/data/get", IN_JOB, json={"key": key})
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return decode(MetaDataValue, response).value


async def meta_data_exists(api: AgentApi, *, scope: str, key: str) -> bool:
    response = await api.call("POST", f"{scope}/data/exists", IN_JOB, json={"key": key})
    return decode(MetaDataExists, response).exists


async def meta_data_keys(api: AgentApi, *, scope: str) -> list[str]:
    return decode(list[str], await api.call("POST", f"{scope}/data/keys", IN_JOB))
