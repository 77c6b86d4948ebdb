"""`step get`: an attribute of a step of the build (`outcome`, `state`, `label`…)."""

from __future__ import annotations

from typing import Any

from kiteline.agent.api import IN_JOB, AgentApi, ApiResponse, decode, path_id


class StepExport(ApiResponse):
    output: str


async def step_attribute(
    api: AgentApi, *, step: str, attribute: str, build_id: str, output_format: str | None
) -> str:
    """`POST steps/{step}/export`; `step` is a key or a step id."""
    body: dict[str, Any] = {"attribute": attribute, "build_id": build_id}
    if output_format:
        body["format"] = output_format
    response = await api.call("POST", f"steps/{path_id(step)}/export", IN_JOB, json=body)
    return decode(StepExport, response).output
