"""Shared fixtures: every server-backed test runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import backends, fresh_database
from tests.support.live_server import LiveServer, start_live_server

# The tests must not pick up a developer's own configuration.
for _name in [
    n for n in os.environ if n.startswith("KITELINE_") and not n.startswith("KITELINE_TEST_")
]:
    del os.environ[_name]


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_live_server(database_url, tmp_path / "data")
    try:
        yield live
    finally:
        live.stop()
