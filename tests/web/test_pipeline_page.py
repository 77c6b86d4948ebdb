"""The pipeline's pages in a real browser: its builds list follows builds created through the
REST API live, the "New Build" dialog creates a build and opens it, and the settings show the
API's YAML error beside the steps. One server (per test database) for all of it."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support.web import WebUi

STEPS = "steps:\n  - command: echo hi\n"


def test_the_builds_list_new_build_dialog_and_settings(web: WebUi, signed_in_page: Any) -> None:
    api = web.api()
    api.post(
        "/v2/organizations/acme/pipelines",
        json={"name": "App", "slug": "app", "configuration": STEPS, "default_branch": "trunk"},
    ).raise_for_status()
    page = signed_in_page
    page.goto("/acme")
    page.get_by_role("link", name="App").click()
    page.wait_for_url(re.compile(r".*/acme/app$"))
    expect(page.get_by_text("No builds yet")).to_be_visible()
    expect(page.locator("body[data-live-connected]")).to_have_count(1)

    # A build created through the API appears without a reload.
    api.post(
        "/v2/organizations/acme/pipelines/app/builds",
        json={"commit": "HEAD", "branch": "main", "message": "From the API"},
    ).raise_for_status()
    row = page.locator(".build-row", has_text="From the API")
    expect(row).to_be_visible()
    expect(row.locator(".build-number")).to_have_text("#1")

    # New Build: a refusal is shown in the dialog, then the build is created and opened.
    page.get_by_role("button", name="New Build").click()
    dialog = page.get_by_role("dialog", name="New Build")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Commit")).to_have_value("HEAD")
    expect(dialog.get_by_label("Branch")).to_have_value("trunk")
    dialog.get_by_label("Message").fill("From the dialog")
    dialog.get_by_label("Environment Variables").fill("GOOD=1\nnot a pair")
    dialog.get_by_role("button", name="Create Build").click()
    dialog = page.get_by_role("dialog", name="New Build")
    expect(dialog.locator("#env-error")).to_have_text(
        "Environment variables must be KEY=value strings, got 'not a pair'"
    )
    expect(dialog.get_by_label("Message")).to_have_value("From the dialog")
    dialog.get_by_label("Environment Variables").fill("GOOD=1\nDEPLOY=no")
    dialog.get_by_role("button", name="Create Build").click()
    page.wait_for_url(re.compile(r".*/acme/app/builds/2$"))
    expect(page.get_by_role("heading", name="From the dialog")).to_be_visible()
    build = api.get("/v2/organizations/acme/pipelines/app/builds/2").json()
    assert (build["message"], build["branch"]) == ("From the dialog", "trunk")
    assert build["source"] == "ui"
    assert build["env"] == {"GOOD": "1", "DEPLOY": "no"}

    # Settings: the API's YAML error beside the steps, with what was typed kept.
    page.goto("/acme/app/settings")
    steps = page.get_by_label("Steps", exact=True)
    steps.fill("steps:\n  - command: [unclosed\n")
    page.get_by_role("button", name="Save Pipeline").click()
    error = page.locator("#configuration-error")
    expect(error).to_contain_text("Steps: Pipeline is not valid YAML")
    expect(page.get_by_label("Steps", exact=True)).to_have_value("steps:\n  - command: [unclosed\n")
    expect(page.get_by_label("Steps", exact=True)).to_have_attribute("aria-invalid", "true")
    assert api.get("/v2/organizations/acme/pipelines/app").json()["configuration"] == STEPS
