"""`AsyncClient`: the SDK on `httpx.AsyncClient`. The same operations as `Client`, performed
with awaits; nothing here knows what any call does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import cached_property
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from kiteline.client._base import ClientBase, as_method
from kiteline.client._effects import (
    Effect,
    Finished,
    Op,
    Outcome,
    Request,
    Sleep,
    Steps,
    Stream,
    connection_error,
    http_request,
)
from kiteline.client.config import ClientConfig

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")


class AsyncClient(ClientBase):
    """Kiteline's (and Buildkite's) REST and GraphQL APIs, for asyncio.

    Use it as an async context manager, or `await aclose()`. Calls are coroutines; lists are
    async iterators that fetch the next page when they get to it.
    """

    @cached_property
    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.config.timeout, **self._http_options)

    async def aclose(self) -> None:
        if "_http" in self.__dict__:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _perform(self, effect: Effect) -> Outcome:
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        http = self._http
        sink = effect.sink
        request = http_request(http, effect)
        try:
            response = await http.send(request, stream=sink is not None)
            if sink is not None:
                try:
                    if response.is_success:
                        # As the bytes arrive: re-chunking them copies every byte again.
                        async for chunk in response.aiter_bytes():
                            sink.write(chunk)
                    else:
                        await response.aread()
                finally:
                    await response.aclose()
        except httpx.TransportError as error:
            raise connection_error(effect, error) from error
        return response

    async def _drive(self, steps: Steps[Y, Any]) -> AsyncIterator[Y]:
        try:
            while not isinstance(step := steps.next(), Finished):
                if isinstance(step, Request | Sleep):
                    try:
                        steps.succeeded(await self._perform(step))
                    except Exception as error:
                        steps.failed(error)
                else:
                    yield step
        finally:
            steps.close()

    async def _run(self, operation: Op[T]) -> T:
        steps: Steps[Any, T] = Steps(operation)
        async for _ in self._drive(steps):
            pass
        return steps.value

    def _bind_call(
        self, operation: Callable[Concatenate[ClientConfig, P], Op[T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._run(operation(self.config, *args, **kwargs))

        return as_method(operation, call)

    def _bind_iterate(
        self, operation: Callable[Concatenate[ClientConfig, P], Stream[T]]
    ) -> Callable[P, AsyncIterator[T]]:
        def iterate(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            return self._drive(Steps(operation(self.config, *args, **kwargs)))

        return as_method(operation, iterate)
