"""`Client`: the SDK on `httpx.Client`, blocking. Each call is an operation of `operations/`
performed by `_perform`; nothing here knows what any call does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


class Client(ClientBase):
    """Kiteline's (and Buildkite's) REST and GraphQL APIs, blocking.

    Use it as a context manager, or `close()` it. Lists are iterators that fetch the next
    page when they get to it.
    """

    @cached_property
    def _http(self) -> httpx.Client:
        return httpx.Client(timeout=self.config.timeout, **self._http_options)

    def close(self) -> None:
        if "_http" in self.__dict__:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _perform(self, effect: Effect) -> Outcome:
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        http = self._http
        sink = effect.sink
        request = http_request(http, effect)
        try:
            response = http.send(request, stream=sink is not None)
            if sink is not None:
                try:
                    if response.is_success:
                        # As the bytes arrive: re-chunking them copies every byte again
                        # (a third of an artifact download's CPU).
                        for chunk in response.iter_bytes():
                            sink.write(chunk)
                    else:
                        response.read()
                finally:
                    response.close()
        except httpx.TransportError as error:
            raise connection_error(effect, error) from error
        return response

    def _drive(self, steps: Steps[Y, Any]) -> Iterator[Y]:
        try:
            while not isinstance(step := steps.next(), Finished):
                if isinstance(step, Request | Sleep):
                    try:
                        steps.succeeded(self._perform(step))
                    except Exception as error:
                        steps.failed(error)
                else:
                    yield step
        finally:
            steps.close()

    def _run(self, operation: Op[T]) -> T:
        steps: Steps[Any, T] = Steps(operation)
        for _ in self._drive(steps):
            pass
        return steps.value

    def _bind_call(
        self, operation: Callable[Concatenate[ClientConfig, P], Op[T]]
    ) -> Callable[P, T]:
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._run(operation(self.config, *args, **kwargs))

        return as_method(operation, call)

    def _bind_iterate(
        self, operation: Callable[Concatenate[ClientConfig, P], Stream[T]]
    ) -> Callable[P, Iterator[T]]:
        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            return self._drive(Steps(operation(self.config, *args, **kwargs)))

        return as_method(operation, iterate)
