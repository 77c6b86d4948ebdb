"""`annotate` and `annotation remove`: Markdown notes on the build page, one per context."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from kiteline.agent.api import IN_JOB, AgentApi, path_id
from kiteline.agent.in_job.context import InJobError

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_CONTEXT = "default"
DEFAULT_PRIORITY = 3


class AnnotationStyle(enum.StrEnum):
    SUCCESS = "success"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class AnnotationScope(enum.StrEnum):
    BUILD = "build"
    JOB = "job"


@dataclass(frozen=True)
class Annotation:
    body: str = ""
    style: AnnotationStyle | None = None
    context: str = ""
    append: bool = False
    priority: int = DEFAULT_PRIORITY
    scope: AnnotationScope = AnnotationScope.BUILD

    def request_body(self) -> dict[str, Any]:
        """As buildkite-agent sends it: empty fields left out (an empty context means
        `default` to the server; no body with a style changes only the style)."""
        body: dict[str, Any] = {}
        if self.body:
            body["body"] = self.body
        if self.style:
            body["style"] = self.style.value
        if self.context:
            body["context"] = self.context
        if self.append:
            body["append"] = True
        body["priority"] = self.priority
        body["scope"] = self.scope.value
        return body


async def annotate(api: AgentApi, *, job_id: str, annotation: Annotation) -> None:
    size = len(annotation.body.encode())
    if size > MAX_BODY_BYTES:
        raise InJobError(f"The annotation body is {size} bytes; the most allowed is 1 MiB")
    if not 1 <= annotation.priority <= 10:
        raise InJobError(f"The priority must be from 1 to 10, got {annotation.priority}")
    await api.call(
        "POST", f"jobs/{path_id(job_id)}/annotations", IN_JOB, json=annotation.request_body()
    )


async def remove_annotation(
    api: AgentApi, *, job_id: str, context: str, scope: AnnotationScope
) -> None:
    await api.call(
        "DELETE",
        f"jobs/{path_id(job_id)}/annotations/{path_id(context or DEFAULT_CONTEXT)}",
        IN_JOB,
        params={"scope": scope.value},
    )
