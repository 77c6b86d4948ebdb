"""REST objects as typed models; fields the models don't name are kept, never refused.

Field names and types follow Buildkite's REST JSON, which Kiteline serves too. Almost every
field is optional: Buildkite leaves keys out of abbreviated objects (a job's agent, a waiter
job) and adds new ones over time, and both must parse. Unknown keys stay readable as
attributes and in `model_extra`. Timestamps accept ISO 8601 and the older
`2018-07-01 20:14:38 UTC` form that some Buildkite answers still use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: Build states after which a build never changes again (`finished_at` is set).
FINISHED_BUILD_STATES = frozenset({"passed", "failed", "canceled", "skipped", "not_run"})
#: Job states in which a job will not run (again); its log is complete.
FINISHED_JOB_STATES = frozenset(
    {
        "passed",
        "failed",
        "canceled",
        "timed_out",
        "skipped",
        "broken",
        "expired",
        "waiting_failed",
        "blocked_failed",
        "unblocked_failed",
    }
)


def _legacy_timestamp(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, str) and value.endswith(" UTC"):
        return value[: -len(" UTC")].replace(" ", "T") + "Z"
    return value


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value


def _no_items_if_null(value: Any) -> Any:
    return [] if value is None else value


Timestamp = Annotated[datetime | None, BeforeValidator(_legacy_timestamp)]
#: A JSON object that some answers send as `null`.
JsonObject = Annotated[dict[str, Any], BeforeValidator(_empty_if_null)]
#: A list of strings that some answers send as `null`.
Strings = Annotated[list[str], BeforeValidator(_no_items_if_null)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class User(ApiModel):
    id: str | None = None
    graphql_id: str | None = None
    name: str | None = None
    email: str | None = None
    avatar_url: str | None = None
    created_at: Timestamp = None


class AccessToken(ApiModel):
    uuid: str | None = None
    scopes: Strings = Field(default_factory=list)
    description: str | None = None
    created_at: Timestamp = None
    expires_at: Timestamp = None
    user: User | None = None


class Resource(ApiModel):
    """An object with its own API URL and web page."""

    id: str | None = None
    graphql_id: str | None = None
    url: str | None = None
    web_url: str | None = None


class Organization(Resource):
    slug: str
    name: str | None = None
    pipelines_url: str | None = None
    agents_url: str | None = None
    emojis_url: str | None = None
    created_at: Timestamp = None


class Pipeline(Resource):
    slug: str
    name: str | None = None
    description: str | None = None
    repository: str | None = None
    default_branch: str | None = None
    branch_configuration: str | None = None
    configuration: str | None = None
    steps: list[dict[str, Any]] | None = None
    env: dict[str, Any] | None = None
    provider: dict[str, Any] | None = None
    visibility: str | None = None
    tags: list[str] | None = None
    cluster_id: str | None = None
    allow_rebuilds: bool | None = None
    skip_queued_branch_builds: bool | None = None
    cancel_running_branch_builds: bool | None = None
    builds_url: str | None = None
    badge_url: str | None = None
    created_by: User | None = None
    created_at: Timestamp = None
    archived_at: Timestamp = None
    scheduled_builds_count: int | None = None
    running_builds_count: int | None = None
    scheduled_jobs_count: int | None = None
    running_jobs_count: int | None = None
    waiting_jobs_count: int | None = None


class Agent(Resource):
    id: str
    name: str | None = None
    connection_state: str | None = None
    hostname: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    version: str | None = None
    os_id: str | None = None
    arch: str | None = None
    queue: str | None = None
    priority: int | None = None
    #: Buildkite's form: `["queue=default", "os=linux"]`.
    meta_data: Strings = Field(default_factory=list)
    creator: User | None = None
    job: Job | None = None
    paused: bool | None = None
    created_at: Timestamp = None
    connected_at: Timestamp = None
    disconnected_at: Timestamp = None
    lost_at: Timestamp = None
    stopped_at: Timestamp = None
    last_job_finished_at: Timestamp = None


class Run(Resource):
    """What builds and jobs share: a state, and the times they moved through."""

    id: str
    state: str | None = None
    created_at: Timestamp = None
    scheduled_at: Timestamp = None
    started_at: Timestamp = None
    finished_at: Timestamp = None


class Job(Run):
    #: `script` (a command step), `waiter`, `manual` (block/input) or `trigger`.
    type: str | None = None
    name: str | None = None
    label: str | None = None
    step_key: str | None = None
    group_key: str | None = None
    command: str | None = None
    exit_status: int | None = None
    soft_failed: bool | None = None
    signal: str | None = None
    signal_reason: str | None = None
    artifact_paths: str | None = None
    agent_query_rules: Strings = Field(default_factory=list)
    agent: Agent | None = None
    build_url: str | None = None
    log_url: str | None = None
    raw_log_url: str | None = None
    artifacts_url: str | None = None
    retried: bool | None = None
    retried_in_job_id: str | None = None
    retries_count: int | None = None
    retry_type: str | None = None
    retry_source: dict[str, Any] | None = None
    retried_by: User | None = None
    parallel_group_index: int | None = None
    parallel_group_total: int | None = None
    unblocked_by: User | None = None
    unblockable: bool | None = None
    unblock_url: str | None = None
    #: A block step's question, and the fields it asks for (`{key, text|select, ...}`).
    prompt: str | None = None
    fields: Annotated[list[dict[str, Any]], BeforeValidator(_no_items_if_null)] = Field(
        default_factory=list
    )
    triggered_build: dict[str, Any] | None = None
    runnable_at: Timestamp = None
    unblocked_at: Timestamp = None

    @property
    def finished(self) -> bool:
        """No more output will come: the job ended, or it will never run."""
        return self.finished_at is not None or self.state in FINISHED_JOB_STATES


class Build(Run):
    number: int
    blocked: bool | None = None
    cancel_reason: str | None = None
    message: str | None = None
    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    source: str | None = None
    env: JsonObject = Field(default_factory=dict)
    meta_data: Annotated[dict[str, str], BeforeValidator(_empty_if_null)] = Field(
        default_factory=dict
    )
    #: `{name, email}`; some older Buildkite answers put a bare email string here.
    author: dict[str, Any] | str | None = None
    creator: User | None = None
    #: Absent when listed with `exclude_jobs=True`.
    jobs: Annotated[list[Job], BeforeValidator(_no_items_if_null)] = Field(default_factory=list)
    job_state_counts: dict[str, Any] | None = None
    #: Absent when listed with `exclude_pipeline=True`.
    pipeline: Pipeline | None = None
    pull_request: dict[str, Any] | None = None
    rebuilt_from: dict[str, Any] | None = None
    triggered_from: dict[str, Any] | None = None
    failing_at: Timestamp = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class Artifact(ApiModel):
    id: str
    job_id: str | None = None
    url: str | None = None
    download_url: str | None = None
    #: `new` (upload pending), `finished`, `error`, `deleted` or `expired`.
    state: str | None = None
    path: str
    dirname: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    file_size: int | None = None
    sha1sum: str | None = None


class Annotation(ApiModel):
    id: str | None = None
    context: str | None = None
    #: `success`, `info`, `warning` or `error`.
    style: str | None = None
    scope: str | None = None
    job_id: str | None = None
    priority: int | None = None
    body_html: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None


Agent.model_rebuild()
Job.model_rebuild()
