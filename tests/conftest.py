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


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def make_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start live servers on the test's database with settings overridden (e.g. limits)."""
    started: list[LiveServer] = []

    def make(**overrides: Any) -> LiveServer:
        live = start_live_server(database_url, tmp_path / f"data{len(started)}", **overrides)
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


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """moto's S3 server for this test process (tests/support/s3.py says how to use it)."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    try:
        with moto_server(log) as service:
            yield service
    except S3Unavailable as error:
        pytest.skip(f"S3 tests need moto's server, which could not start: {error}")
