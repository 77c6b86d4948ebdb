"""Shared fixtures: every server-backed test runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from _pytest.reports import TestReport
from _pytest.runner import CallInfo

from tests.support.databases import backends, fresh_database
from tests.support.live_server import LiveServer, start_live_server
from tests.support.s3 import S3Service, S3Unavailable, moto_server
from tests.support.web import Site, signed_in_site

# The tests must not pick up a developer's own configuration.
for _name in [
    n for n in os.environ if n.startswith("KITELINE_") and not n.startswith("KITELINE_TEST_")
]:
    del os.environ[_name]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: CallInfo[None]
) -> Generator[None, pluggy.Result[TestReport], None]:
    """Report a failure even when formatting its traceback fails.

    CPython 3.11 counts AST construction depth per interpreter, not per thread: while pytest
    parses a failed test's source for the traceback, a live server's thread compiling code
    (a template, a generated function) can make `ast.parse` raise SystemError. Unhandled, that
    crashes the xdist worker and loses the rest of its tests; so format again, and if it still
    fails, as a plain traceback, which needs no source."""
    outcome = yield
    try:
        outcome.get_result()
    except SystemError:
        try:
            report = TestReport.from_item_and_call(item, call)
        except SystemError:
            style = item.config.option.tbstyle
            item.config.option.tbstyle = "native"
            try:
                report = TestReport.from_item_and_call(item, call)
            finally:
                item.config.option.tbstyle = style
        outcome.force_result(report)


#: The GraphQL tests run in the default (fast) execution mode; those marked
#: `both_graphql_executions` run in stock mode too.
BOTH_EXECUTIONS = "both_graphql_executions"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{BOTH_EXECUTIONS}: run with KITELINE_GRAPHQL_EXECUTION=fast and =stock "
        "(the servers the test starts)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(BOTH_EXECUTIONS) is not None:
        metafunc.parametrize("graphql_execution", ["fast", "stock"], indirect=True)


@pytest.fixture
def graphql_execution(request: pytest.FixtureRequest) -> str:
    """The servers' `graphql_execution` setting: fast unless parametrized."""
    return str(getattr(request, "param", "fast"))


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def make_server(
    database_url: str, tmp_path: Path, graphql_execution: str
) -> Iterator[Callable[..., LiveServer]]:
    """Start live servers on the test's database with settings overridden (e.g. limits)."""
    started: list[LiveServer] = []

    def make(**overrides: Any) -> LiveServer:
        settings = {"graphql_execution": graphql_execution, **overrides}
        live = start_live_server(database_url, tmp_path / f"data{len(started)}", **settings)
        started.append(live)
        return live

    try:
        yield make
    finally:
        for live in started:
            live.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server()


@pytest.fixture
def site(server: LiveServer) -> Iterator[Site]:
    """A member of organization `acme` signed in to `server`'s web UI (a module may define its
    own `site` on a `SignedIn` of its own)."""
    with signed_in_site(server, Site) as site:
        yield site


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """moto's S3 server for this test process (tests/support/s3.py says how to use it)."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    try:
        with moto_server(log) as service:
            yield service
    except S3Unavailable as error:
        pytest.skip(f"S3 tests need moto's server, which could not start: {error}")
