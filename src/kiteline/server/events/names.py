"""The names of the events the outbox records, as Buildkite's webhooks name them."""

from __future__ import annotations

from enum import StrEnum


class EventName(StrEnum):
    BUILD_SCHEDULED = "build.scheduled"
    BUILD_RUNNING = "build.running"
    BUILD_FAILING = "build.failing"
    BUILD_FINISHED = "build.finished"
    JOB_SCHEDULED = "job.scheduled"
    JOB_STARTED = "job.started"
    JOB_FINISHED = "job.finished"
    JOB_ACTIVATED = "job.activated"
    AGENT_CONNECTED = "agent.connected"
    AGENT_DISCONNECTED = "agent.disconnected"
    AGENT_LOST = "agent.lost"
    AGENT_STOPPING = "agent.stopping"
    AGENT_STOPPED = "agent.stopped"


#: The events of a build itself (a commit status follows them).
BUILD_EVENTS = frozenset(
    {
        EventName.BUILD_SCHEDULED,
        EventName.BUILD_RUNNING,
        EventName.BUILD_FAILING,
        EventName.BUILD_FINISHED,
    }
)
