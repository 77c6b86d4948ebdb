"""Browser tests: one Chromium for all of tests/web, a new context (cookies, storage) for each
test, against a live server on each test database.

Package-scoped rather than session-scoped: while Playwright's synchronous API is open it keeps
an event loop running in the test thread, which async tests elsewhere in the suite must not
meet. Browser tests belong in tests/web."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.live_server import LiveServer
from tests.support.web import CHROMIUM_ARGS, WebUi, chromium_path, give_password


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        reason = "chromium is not installed (Debian package chromium): browser tests skipped"
        print(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def web(make_server: Callable[..., LiveServer], browser: Any) -> WebUi:
    server = make_server()
    identity = server.identity("acme")
    ui = WebUi(server=server, identity=identity, browser=browser)
    give_password(server, identity, ui.password)
    return ui


@pytest.fixture
def context(web: WebUi) -> Iterator[Any]:
    context = web.new_context()
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A page in a fresh, signed-out browser context."""
    return context.new_page()


@pytest.fixture
def signed_in_page(web: WebUi, page: Any) -> Any:
    """A page of a browser signed in as the `acme` member, on /acme."""
    web.sign_in(page)
    return page
