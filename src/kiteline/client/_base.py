"""What `Client` and `AsyncClient` share: their settings, and every call, declared once.

Each call is an operation of `operations/` wrapped in a descriptor (`call` for one result,
`iterate` for a list or a stream); reading it from a `Client` gives a blocking method, from an
`AsyncClient` a coroutine method (or an async iterator), with the operation's own signature
and docstring, and typed as such for mypy and editors.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from kiteline.client._effects import Op, Stream
from kiteline.client.config import ClientConfig
from kiteline.client.operations import agents as _agents
from kiteline.client.operations import annotations as _annotations
from kiteline.client.operations import artifacts as _artifacts
from kiteline.client.operations import builds as _builds
from kiteline.client.operations import graphql as _graphql
from kiteline.client.operations import jobs as _jobs
from kiteline.client.operations import meta_data as _meta_data
from kiteline.client.operations import organizations as _organizations
from kiteline.client.operations import pipelines as _pipelines
from kiteline.client.operations import schedules as _schedules
from kiteline.client.operations import webhooks as _webhooks

if TYPE_CHECKING:
    from kiteline.client.aio import AsyncClient
    from kiteline.client.sync import Client

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def as_method(operation: Callable[..., Any], method: F) -> F:
    """`method` named, documented and signed as `operation`, less its `config` argument and
    its return annotation (an operation's, not what the method returns)."""
    functools.update_wrapper(method, operation)
    signature = inspect.signature(operation)
    method.__dict__["__signature__"] = signature.replace(
        parameters=list(signature.parameters.values())[1:],
        return_annotation=inspect.Signature.empty,
    )
    return method


class call(Generic[P, T]):
    """A call with one result: `T` from a `Client`, a coroutine of `T` from an `AsyncClient`."""

    def __init__(self, operation: Callable[Concatenate[ClientConfig, P], Op[T]]) -> None:
        self.operation = operation
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...
    @overload
    def __get__(
        self, instance: AsyncClient, owner: type
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, instance: Client, owner: type) -> Callable[P, T]: ...
    def __get__(self, instance: ClientBase | None, owner: type) -> Any:
        return self if instance is None else instance._bind_call(self.operation)


class iterate(Generic[P, T]):
    """A list or a stream: an iterator from a `Client`, an async iterator from an
    `AsyncClient`, fetching more only as it is consumed."""

    def __init__(self, operation: Callable[Concatenate[ClientConfig, P], Stream[T]]) -> None:
        self.operation = operation
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...
    @overload
    def __get__(self, instance: AsyncClient, owner: type) -> Callable[P, AsyncIterator[T]]: ...
    @overload
    def __get__(self, instance: Client, owner: type) -> Callable[P, Iterator[T]]: ...
    def __get__(self, instance: ClientBase | None, owner: type) -> Any:
        return self if instance is None else instance._bind_iterate(self.operation)


class ClientBase:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        org: str | None = None,
        rest_url: str | None = None,
        graphql_url: str | None = None,
        timeout: float = 30.0,
        max_rate_limit_wait: float = 60.0,
        max_retries: int = 3,
        per_page: int = 100,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`base_url` is a Kiteline server's root (REST at `/v2`, GraphQL at `/v1`); without
        it, `KITELINE_URL`, else Buildkite (`BUILDKITE_API_URL`, default
        `https://api.buildkite.com/v2`). The token is `token`, else `KITELINE_TOKEN` (with a
        Kiteline URL), else `BUILDKITE_API_TOKEN`. `org` is the organization used when a
        call's `org` is omitted (else `KITELINE_ORG` or `BUILDKITE_ORGANIZATION_SLUG`).
        `http_options` go to the httpx client (`verify`, `proxy`, `transport`, ...)."""
        self.config = ClientConfig.resolve(
            base_url,
            token,
            org=org,
            rest_url=rest_url,
            graphql_url=graphql_url,
            timeout=timeout,
            max_rate_limit_wait=max_rate_limit_wait,
            max_retries=max_retries,
            per_page=per_page,
        )
        self._http_options = dict(http_options or {})

    def __repr__(self) -> str:
        config = self.config
        return (
            f"{type(self).__name__}(rest_url={config.rest_url!r}, "
            f"graphql_url={config.graphql_url!r}, org={config.org!r})"
        )

    def _bind_call(self, operation: Callable[Concatenate[ClientConfig, P], Op[T]]) -> Any:
        raise NotImplementedError

    def _bind_iterate(self, operation: Callable[Concatenate[ClientConfig, P], Stream[T]]) -> Any:
        raise NotImplementedError

    organizations = iterate(_organizations.organizations)
    organization = call(_organizations.organization)
    user = call(_organizations.user)
    access_token = call(_organizations.access_token)

    pipelines = iterate(_pipelines.pipelines)
    pipeline = call(_pipelines.pipeline)
    create_pipeline = call(_pipelines.create_pipeline)
    update_pipeline = call(_pipelines.update_pipeline)
    delete_pipeline = call(_pipelines.delete_pipeline)
    schedules = call(_schedules.schedules)
    create_schedule = call(_schedules.create_schedule)
    update_schedule = call(_schedules.update_schedule)
    delete_schedule = call(_schedules.delete_schedule)

    builds = iterate(_builds.builds)
    build = call(_builds.build)
    trigger_build = call(_builds.trigger_build)
    cancel_build = call(_builds.cancel_build)
    rebuild_build = call(_builds.rebuild_build)
    wait_for_build = call(_builds.wait_for_build)

    job = call(_jobs.job)
    job_log = call(_jobs.job_log)
    stream_log = iterate(_jobs.stream_log)
    job_env = call(_jobs.job_env)
    retry_job = call(_jobs.retry_job)
    unblock_job = call(_jobs.unblock_job)

    artifacts = iterate(_artifacts.artifacts)
    download_artifact = call(_artifacts.download_artifact)
    download_artifacts = call(_artifacts.download_artifacts)

    agents = iterate(_agents.agents)
    agent = call(_agents.agent)
    stop_agent = call(_agents.stop_agent)

    annotations = iterate(_annotations.annotations)
    annotate = call(_annotations.annotate)
    delete_annotation = call(_annotations.delete_annotation)

    meta_data = call(_meta_data.meta_data)
    get_meta_data = call(_meta_data.get_meta_data)
    set_meta_data = call(_meta_data.set_meta_data)

    webhooks = iterate(_webhooks.webhooks)
    create_webhook = call(_webhooks.create_webhook)
    webhook_deliveries = iterate(_webhooks.webhook_deliveries)
    redeliver = call(_webhooks.redeliver)

    graphql = call(_graphql.graphql)
