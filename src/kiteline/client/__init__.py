"""Kiteline's Python SDK: `Client` and `AsyncClient` for Kiteline's and Buildkite's REST and
GraphQL APIs, their models and errors. Webhook signatures are in `kiteline.client.webhooks`.

    with Client("http://127.0.0.1:8080", token, org="acme") as client:
        build = client.trigger_build("web", message="Deploy", env={"STAGE": "prod"})
        build = client.wait_for_build("web", build.number, on_progress=print)
        client.download_artifacts("web", build.number, "dist/*", "out")

`AsyncClient` has the same calls as coroutines (`await client.build(...)`, `async for`).
"""

from kiteline.client.aio import AsyncClient
from kiteline.client.config import ClientConfig
from kiteline.client.errors import (
    ApiConnectionError,
    ApiError,
    BadRequest,
    BuildTimeout,
    ChecksumMismatch,
    ConfigurationError,
    Conflict,
    Forbidden,
    GraphQLError,
    KitelineClientError,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
)
from kiteline.client.models import (
    AccessToken,
    Agent,
    Annotation,
    Artifact,
    Build,
    Job,
    Organization,
    Pipeline,
    User,
)
from kiteline.client.sync import Client

__all__ = [
    "AccessToken",
    "Agent",
    "Annotation",
    "ApiConnectionError",
    "ApiError",
    "Artifact",
    "AsyncClient",
    "BadRequest",
    "Build",
    "BuildTimeout",
    "ChecksumMismatch",
    "Client",
    "ClientConfig",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "GraphQLError",
    "Job",
    "KitelineClientError",
    "NotFound",
    "Organization",
    "Pipeline",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "User",
]
