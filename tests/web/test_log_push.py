"""The log viewer in Chromium with its stream pushing the new lines (decision 0049): appended
as fetched windows were, without a request; past what a push covers, fetched as before."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support.agent_protocol import ScriptedAgent
from tests.support.web import WebUi
from tests.web.test_build_page import create_build, create_pipeline


def test_a_followed_log_appends_pushed_windows_and_fetches_what_was_not_pushed(
    web: WebUi, signed_in_page: Any
) -> None:
    # A queue of its own: the server is shared, and other tests leave jobs scheduled.
    create_pipeline(
        web, "pushed", "steps:\n  - label: Pushed\n    command: make\n    agents: {queue: pushed}\n"
    )
    create_build(web, "pushed")
    agent = ScriptedAgent.register(web.url, web.identity.agent_token, meta_data=["queue=pushed"])
    job = agent.take_job()
    job_id = job["id"]
    assert agent.log(job, 0, 0, b"+++ Run\nfirst\n").status_code < 300
    page = signed_in_page
    fetched: list[str] = []
    page.on(
        "request", lambda request: fetched.append(request.url) if "/log?" in request.url else None
    )
    page.goto("/acme/pushed/builds/1")
    page.get_by_role("button", name=re.compile("Pushed")).click()
    viewer = page.locator(".log-viewer")
    expect(viewer.locator(".log-line", has_text="first")).to_have_id(f"{job_id}-L2")
    expect(viewer).to_have_attribute("data-following", "")

    assert agent.log(job, 1, 14, b"second\n").status_code < 300
    expect(viewer.locator(".log-line", has_text="second")).to_have_id(f"{job_id}-L3")
    assert agent.log(job, 2, 21, b"third\n").status_code < 300
    expect(viewer.locator(".log-line", has_text="third")).to_have_id(f"{job_id}-L4")
    assert agent.log(job, 3, 27, b"fourth\n").status_code < 300
    expect(viewer.locator(".log-line", has_text="fourth")).to_have_id(f"{job_id}-L5")
    # Pushed windows join the section the page's last line is in, as fetched ones do: also
    # after a window whose lines all joined the one before it.
    run = viewer.locator("details.log-section", has_text="Run")
    expect(run.locator(".log-line")).to_have_text(["Run", "first", "second", "third", "fourth"])
    assert fetched == []

    # More than a push covers: the stream says the size, the viewer fetches its window.
    big = b"".join(b"%07d\n" % n for n in range(40_000))
    assert agent.log(job, 4, 34, big).status_code < 300
    expect(viewer.get_by_role("button", name="Show later lines")).to_be_visible()
    expect(viewer.locator(f'[id="{job_id}-L6"]')).to_have_text(re.compile("0000000"))
    assert len(fetched) == 1
    assert fetched[0].endswith(f"/acme/pushed/builds/1/jobs/{job_id}/log?after=34&line=6")
