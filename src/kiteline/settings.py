"""Kiteline's configuration: one pydantic-settings class, overridable with KITELINE_*."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: `agent_lost_after_seconds` is at least this many heartbeat intervals: an agent may miss one
#: heartbeat (a retry, a slow server) and still be heard from before it is declared lost.
LOST_AFTER_HEARTBEATS = 2

KIB = 1024
MIB = 1024 * KIB


class Settings(BaseSettings):
    """Everything the server, the workers and `kiteline up` read from the environment."""

    model_config = SettingsConfigDict(env_prefix="KITELINE_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".kiteline"), description="SQLite database, blobs, credentials"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite in the data dir when unset"
    )
    redis_url: str | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = Field(
        default=None, description="Base URL clients use to reach this server (url/web_url fields)"
    )

    secret_key: str | None = Field(
        default=None,
        description="Signs artifact URLs; kept in the data dir when unset (set it for replicas)",
    )
    blob_url: str | None = Field(
        default=None,
        description="Where artifacts (and finished logs) go: s3://bucket/prefix (endpoint, "
        "region and credentials from the usual AWS variables), or a local path or file:// URL; "
        "unset: the filesystem under KITELINE_BLOB_DIR",
    )
    blob_dir: Path | None = Field(default=None, description="Filesystem blob store root")
    signed_url_ttl_seconds: int = 600

    # Agent protocol timings, in seconds, sent to agents on register.
    agent_ping_interval: int = 2
    agent_job_status_interval: int = 1
    agent_heartbeat_interval: int = 30
    agent_ping_max_wait: float = 20.0
    chunks_max_size_bytes: int = 1024 * 1024
    chunks_interval_seconds: int = 1

    # REST requests per minute, as Buildkite counts them; 0 turns a limit off.
    rate_limit_org_per_minute: int = Field(default=200, ge=0, description="Per organization")
    rate_limit_user_per_minute: int = Field(
        default=0, ge=0, description="Per user across organizations (Buildkite's is 50)"
    )

    # GraphQL complexity, as Buildkite counts it; a window budget of 0 turns that limit off.
    graphql_complexity_per_window: int = Field(
        default=20_000, ge=0, description="Complexity points per organization per window"
    )
    graphql_window_seconds: int = Field(
        default=120, ge=1, description="Length of the complexity window (the seed's 2 minutes)"
    )
    graphql_max_query_complexity: int = Field(
        default=50_000, ge=1, description="Largest requested complexity of a single query"
    )
    graphql_execution: Literal["fast", "stock"] = Field(
        default="fast",
        description="fast: Kiteline's shortcuts past strawberry's and graphql-core's per-field "
        "work (on their private internals, both pinned); stock: the libraries as they come",
    )

    # Size limits (see kit/limits.py and docs/reliability.md): far above what real pipelines
    # send, low enough that one request can't fill the database or the server's memory.
    max_request_bytes: int = Field(
        default=20 * MIB, ge=1024, description="Largest request body (413 above it)"
    )
    max_artifact_bytes: int = Field(
        default=5 * 1024 * MIB, ge=1024, description="Largest artifact upload body"
    )
    max_build_message_bytes: int = Field(
        default=256 * KIB, ge=1, description="Largest build message"
    )
    max_env_vars: int = Field(
        default=1000, ge=1, description="Variables in a build's or pipeline's env"
    )
    max_env_key_bytes: int = Field(default=1024, ge=1, description="Longest env variable name")
    max_env_value_bytes: int = Field(default=128 * KIB, ge=1, description="Longest env value")
    max_meta_data_key_bytes: int = Field(default=1024, ge=1, description="Longest meta-data key")
    max_meta_data_value_bytes: int = Field(
        default=1 * MIB, ge=1, description="Longest meta-data value"
    )
    max_steps_per_upload: int = Field(
        default=50_000, ge=1, description="Steps (groups included) in one pipeline or upload"
    )
    max_jobs_per_build: int = Field(default=100_000, ge=1, description="Jobs in one build")
    max_pipeline_bytes: int = Field(
        default=10 * MIB, ge=1024, description="Largest pipeline YAML or JSON text"
    )
    max_pipeline_alias_nodes: int = Field(
        default=100_000,
        ge=0,
        description="Nodes a pipeline's YAML aliases may add, counted each time one is used",
    )
    graphql_max_aliases: int = Field(
        default=500, ge=1, description="Aliased fields in one GraphQL document"
    )
    graphql_max_fields: int = Field(
        default=5000, ge=1, description="Fields in one GraphQL document, fragments expanded"
    )
    graphql_max_answer_bytes: int = Field(
        default=20 * MIB, ge=1024, description="Largest GraphQL answer (introspection included)"
    )

    # Background workers (inside `kiteline server` unless run apart with `kiteline worker`).
    run_workers: bool = True
    worker_interval_seconds: float = 1.0
    agent_lost_after_seconds: float = Field(
        default=120.0,
        description="An agent silent this long is lost and its job finished -1; at least "
        "LOST_AFTER_HEARTBEATS heartbeat intervals",
    )
    job_expiry_seconds: float = Field(
        default=30 * 24 * 3600, description="A job no agent took for this long expires"
    )

    # Finished jobs' logs and retention (background sweeps, see docs/operations.md).
    log_compaction: bool = Field(
        default=True,
        description="Move each finished job's log out of the database into one compressed "
        "object in the blob store",
    )
    log_compaction_delay_seconds: float = Field(
        default=30.0, ge=0, description="How long after a job finishes its log is compacted"
    )
    log_retention_seconds: float = Field(
        default=0,
        ge=0,
        description="Logs of builds finished longer ago than this are deleted (0: kept forever)",
    )
    artifact_retention_seconds: float = Field(
        default=0,
        ge=0,
        description="Artifacts of builds finished longer ago than this expire and their files "
        "are deleted (0: kept forever)",
    )
    webhook_delivery_retention_seconds: float = Field(
        default=90 * 24 * 3600,
        ge=0,
        description="Finished webhook deliveries (and their attempts) older than this are "
        "deleted (0: kept forever)",
    )

    # Webhook delivery (a background loop beside the sweeps).
    webhook_max_attempts: int = Field(
        default=10, ge=1, description="Attempts of one delivery before it is marked failed"
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Whole-request limit of one attempt (Buildkite's is 5 s)"
    )
    webhook_disable_after_failures: int = Field(
        default=20,
        ge=0,
        description="Consecutive failed attempts that disable a webhook (0: never)",
    )
    webhook_backoff_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay; doubles per attempt, with jitter"
    )
    webhook_backoff_max_seconds: float = Field(default=600.0, gt=0, description="Longest delay")
    webhook_poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often the delivery loop looks for new events"
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Requests one worker process has in flight at once"
    )

    # Code hosts: where commit statuses go, and the token that may post them.
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub's API (GitHub Enterprise: …/api/v3)"
    )
    github_token: str | None = Field(default=None, description="Posts GitHub commit statuses")
    gitlab_api_url: str = Field(default="https://gitlab.com/api/v4", description="GitLab's API")
    gitlab_token: str | None = Field(default=None, description="Posts GitLab commit statuses")
    gitea_api_url: str | None = Field(
        default=None,
        description="Gitea's or Forgejo's API; https://<repository host>/api/v1 when unset",
    )
    gitea_token: str | None = Field(default=None, description="Posts Gitea commit statuses")

    # The web UI.
    session_lifetime_seconds: int = Field(
        default=14 * 24 * 3600, ge=60, description="A web sign-in lasts this long, then expires"
    )
    login_attempts_per_minute: int = Field(
        default=10,
        ge=0,
        description="Sign-in attempts per email and per client address per minute (0: off)",
    )
    live_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Live pages also look at the events outbox this often, catching changes "
        "made by processes whose wake-ups do not reach this one (SQLite, `kiteline worker`)",
    )

    metrics_token: str | None = Field(
        default=None,
        description="Bearer token /metrics requires; unset: /metrics answers loopback clients only",
    )

    log_sql: bool = False

    @field_validator("blob_url")
    @classmethod
    def _known_blob_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        scheme = urlsplit(url).scheme
        if scheme == "s3":
            parts = urlsplit(url)
            if not parts.netloc or parts.query or parts.fragment:
                raise ValueError(f"{url!r}: an S3 store is s3://bucket or s3://bucket/prefix")
        elif scheme not in ("", "file"):
            raise ValueError(
                f"{url!r}: not a blob store this server knows (s3://bucket/prefix, "
                "file:///path or a path)"
            )
        return url

    @model_validator(mode="after")
    def _lost_after_outlasts_heartbeats(self) -> Settings:
        heartbeat = max(self.agent_heartbeat_interval, 1)  # as agents are told on register
        least = LOST_AFTER_HEARTBEATS * heartbeat
        if self.agent_lost_after_seconds < least:
            raise ValueError(
                f"KITELINE_AGENT_LOST_AFTER_SECONDS ({self.agent_lost_after_seconds:g}) must be "
                f"at least {least:g}: {LOST_AFTER_HEARTBEATS} times "
                f"KITELINE_AGENT_HEARTBEAT_INTERVAL ({heartbeat}), so that a live agent whose "
                "heartbeat is late or lost once is not declared lost"
            )
        return self

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'kiteline.db'}"


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, sqlite:///...) and pick async drivers."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def describe_settings_error(error: ValidationError) -> str:
    """One line naming each setting that is wrong and why (pydantic's own text is a block)."""
    problems = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        fields = [str(part) for part in problem["loc"]]
        if fields:
            message = f"KITELINE_{'_'.join(fields).upper()}: {message}"
        problems.append(message)
    return "invalid configuration: " + "; ".join(problems)


def get_settings() -> Settings:
    return Settings()
