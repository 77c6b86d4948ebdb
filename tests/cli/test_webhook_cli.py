"""`kiteline webhook create|list|deliveries|redeliver` against a running server's REST API."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from kiteline.cli import build_app
from tests.support.live_server import LiveServer
from tests.support.processes import wait_until
from tests.support.webhook_receiver import receiver


def _run(server: LiveServer, token: str, *args: str) -> Any:
    result = CliRunner().invoke(
        build_app(),
        ["webhook", *args, "--org", "acme", "--json"],
        env={"KITELINE_URL": server.url, "KITELINE_TOKEN": token},
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_list_deliveries_and_redeliver(server: LiveServer) -> None:
    token = server.identity("acme").api_token
    server.client(token).post(
        "/v2/organizations/acme/pipelines",
        json={"name": "P", "configuration": "steps:\n  - command: x\n"},
    )
    with receiver() as hook:
        created = _run(
            server,
            token,
            "create",
            hook.url,
            "--event",
            "build.finished",
            "--pipeline",
            "p",
            "--mode",
            "signature",
            "--secret",
            "s3cret",
        )
        assert created["settings"]["events"] == ["build.finished"]
        assert (created["settings"]["token_mode"], created["settings"]["token"]) == (
            "signature",
            "s3cret",
        )
        assert created["scope"] == "some_projects"
        listed = _run(server, token, "list")
        assert [w["id"] for w in listed["items"]] == [created["id"]]
        (ping,) = wait_until(
            lambda: (
                items
                if (items := _run(server, token, "deliveries", created["id"])["items"])
                and items[0]["state"] == "succeeded"
                else None
            ),
            what="the ping to be delivered",
        )
        again = _run(server, token, "redeliver", created["id"], ping["id"])
        assert (again["event"], again["redelivery_of"]) == ("ping", ping["id"])
        hook.wait_for_accepted(2)


def test_an_error_answer_is_reported(server: LiveServer) -> None:
    token = server.identity("acme").api_token
    result = CliRunner().invoke(
        build_app(),
        ["webhook", "create", "ftp://nowhere", "--org", "acme"],
        env={"KITELINE_URL": server.url, "KITELINE_TOKEN": token},
    )
    assert result.exit_code == 1
    assert "Validation Failed: settings.url must be an http:// or https:// URL" in result.output
