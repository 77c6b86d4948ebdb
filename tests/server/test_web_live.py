"""Live updates for web pages: the events outbox reaches a page's Server-Sent Events stream, by
topic, across replicas, with nothing lost between a page's rendering and its stream."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer, writer_and_watcher
from tests.support.web import PASSWORD, give_password, http_sign_in

STEPS = "steps:\n  - command: echo hi\n"


def signed_in(server: LiveServer, identity: Identity) -> httpx.Client:
    give_password(server, identity)
    client = httpx.Client(base_url=server.url, headers={"Accept": "text/html"}, timeout=30)
    assert http_sign_in(client, identity.email, PASSWORD).status_code == 303
    return client


def page_live_url(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'data-live-url="([^"]+)"', page.text)
    assert found is not None
    return found.group(1).replace("&amp;", "&")


@contextmanager
def stream(client: httpx.Client, url: str) -> Iterator[Iterator[dict[str, Any]]]:
    """The stream's messages as they arrive (heartbeats skipped), once the server listens."""
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry: ")  # sent once the stream is subscribed

        def messages() -> Iterator[dict[str, Any]]:
            for line in lines:
                if line.startswith("data: "):
                    yield json.loads(line[len("data: ") :])

        yield messages()


def create_pipeline(server: LiveServer, identity: Identity, name: str) -> dict[str, Any]:
    created = server.client(identity.api_token).post(
        f"/v2/organizations/{identity.org}/pipelines", json={"name": name, "configuration": STEPS}
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def create_build(server: LiveServer, identity: Identity, pipeline: str) -> dict[str, Any]:
    created = server.client(identity.api_token).post(
        f"/v2/organizations/{identity.org}/pipelines/{pipeline}/builds",
        json={"commit": "HEAD", "branch": "main"},
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def test_a_build_reaches_the_page_that_was_open_before_it(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = signed_in(server, identity)
    create_pipeline(server, identity, "Hello")
    live_url = page_live_url(client, "/acme")
    # Created after the page rendered but before its stream opened: replayed, not lost.
    build = create_build(server, identity, "hello")
    with stream(client, live_url) as messages:
        first = next(messages)
    assert first["event"] == "build.scheduled"
    assert first["build_id"] == build["id"]
    assert first["state"] == "scheduled"


def test_a_stream_of_one_pipeline_hears_only_that_pipeline(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = signed_in(server, identity)
    wanted = create_pipeline(server, identity, "Wanted")
    create_pipeline(server, identity, "Other")
    with stream(client, f"/organizations/acme/live?after=0&pipeline={wanted['id']}") as messages:
        create_build(server, identity, "other")
        build = create_build(server, identity, "wanted")
        first = next(messages)
    assert first["event"] == "build.scheduled"
    assert first["build_id"] == build["id"]
    assert first["pipeline_id"] == wanted["id"]


def test_another_organizations_stream_is_not_found(server: LiveServer) -> None:
    identity = server.identity("acme")
    server.identity("globex")
    client = signed_in(server, identity)
    assert client.get("/organizations/globex/live").status_code == 404


def test_a_signed_out_stream_tells_the_browser_to_stop(server: LiveServer) -> None:
    server.identity("acme")
    # Answered at once; the generous timeout is for a CI machine busy with other tests.
    response = httpx.get(f"{server.url}/organizations/acme/live", timeout=60)
    assert response.status_code == 204


def test_a_build_on_one_replica_reaches_a_page_on_another(
    make_server: Callable[..., LiveServer], database_url: str
) -> None:
    writer, watcher = writer_and_watcher(make_server, database_url)
    identity = writer.identity("acme")
    create_pipeline(writer, identity, "Hello")
    client = signed_in(watcher, identity)
    with stream(client, "/organizations/acme/live") as messages:  # no replay: live only
        build = create_build(writer, identity, "hello")
        first = next(messages)
    assert first["event"] == "build.scheduled"
    assert first["build_id"] == build["id"]


@pytest.mark.parametrize("kind", ["build", "job"])
def test_a_stream_of_one_build_hears_its_jobs(server: LiveServer, kind: str) -> None:
    identity = server.identity("acme")
    client = signed_in(server, identity)
    create_pipeline(server, identity, "Hello")
    build = create_build(server, identity, "hello")
    job_id = build["jobs"][0]["id"]
    subject = build["id"] if kind == "build" else job_id
    with stream(client, f"/organizations/acme/live?{kind}={subject}&after=0") as messages:
        canceled = server.client(identity.api_token).put(
            f"/v2/organizations/acme/pipelines/hello/builds/{build['number']}/cancel"
        )
        assert canceled.status_code == 200, canceled.text
        heard = []
        for message in messages:
            heard.append(message)
            if message.get("job_id") == job_id and message["state"] == "canceled":
                break
    if kind == "build":
        assert {message["build_id"] for message in heard} == {build["id"]}
        assert heard[0]["event"] == "build.scheduled"  # replayed from after=0
    else:
        assert {message["job_id"] for message in heard} == {job_id}


def test_a_followed_log_reports_its_size_as_chunks_arrive(server: LiveServer) -> None:
    identity = server.identity("acme")
    client = signed_in(server, identity)
    create_pipeline(server, identity, "Hello")
    create_build(server, identity, "hello")
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert agent.log(job, 0, 0, b"first line\n").status_code < 300
    with stream(client, f"/organizations/acme/live?log={job['id']}") as messages:
        first = next(messages)  # what arrived before the page followed
        assert agent.log(job, 1, 11, b"second\n").status_code < 300
        second = next(messages)
    assert first == {"event": "log", "job_id": job["id"], "size": 11}
    assert second == {"event": "log", "job_id": job["id"], "size": 18}


def test_another_organizations_log_cannot_be_followed(server: LiveServer) -> None:
    acme = server.identity("acme")
    globex = server.identity("globex")
    create_pipeline(server, globex, "Secret")
    foreign_job = create_build(server, globex, "secret")["jobs"][0]["id"]
    client = signed_in(server, acme)
    assert client.get(f"/organizations/acme/live?log={foreign_job}").status_code == 404
