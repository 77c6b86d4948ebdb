"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from kiteline.server.agents.models import Agent, ServingProcess
from kiteline.server.annotations.models import Annotation
from kiteline.server.artifacts.models import Artifact
from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.events.models import Event
from kiteline.server.jobs.models import Job
from kiteline.server.kit.db import Base
from kiteline.server.logs.models import JobLog, LogChunk
from kiteline.server.organizations.models import Membership, Organization
from kiteline.server.pipeline_uploads.models import PipelineUpload
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.schedules.models import PipelineSchedule
from kiteline.server.sessions.models import WebSession
from kiteline.server.sources.models import CommitStatus, SourceDelivery
from kiteline.server.tokens.models import AgentToken, ApiToken
from kiteline.server.users.models import User
from kiteline.server.webhooks.models import (
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookFanout,
    WebhookFanoutFloor,
)

__all__ = [
    "Agent",
    "AgentToken",
    "Annotation",
    "ApiToken",
    "Artifact",
    "Base",
    "Build",
    "BuildMetaData",
    "CommitStatus",
    "Event",
    "Job",
    "JobLog",
    "LogChunk",
    "Membership",
    "Organization",
    "Pipeline",
    "PipelineSchedule",
    "PipelineUpload",
    "ServingProcess",
    "SourceDelivery",
    "User",
    "WebSession",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookFanout",
    "WebhookFanoutFloor",
]
