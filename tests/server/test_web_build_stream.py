"""The build page's block stream (pages/build_feed.py): the live block, rendered once per change
of the build for all its viewers, pushed to each viewer's stream with that viewer's CSRF token;
only to viewers who may see the build; equal to what the page renders; across replicas."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import httpx

from tests.server.test_web_live import create_build, create_pipeline, signed_in
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer, writer_and_watcher

LIVE = {"HX-Request": "true", "HX-Target": "build_live"}
PAGE = "/acme/hello/builds/1"


class Block(NamedTuple):
    id: str
    html: str


def block_url(client: httpx.Client, path: str = PAGE) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'data-block-url="([^"]+)"', page.text)
    assert found is not None
    return html.unescape(found.group(1))


def csrf_token(client: httpx.Client, path: str = PAGE) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


@contextmanager
def blocks(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> Iterator[Iterator[Block]]:
    """The stream's blocks as they arrive (heartbeats skipped), once the server listens."""
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry: ")  # sent once the stream follows the build

        def parsed() -> Iterator[Block]:
            fields: dict[str, str] = {}
            data: list[str] = []
            for line in lines:
                if line == "":
                    if data:
                        assert fields["event"] == "block"
                        yield Block(fields["id"], "\n".join(data))
                    fields, data = {}, []
                elif line.startswith("data: "):
                    data.append(line[len("data: ") :])
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value

        yield parsed()


def until_state(stream: Iterator[Block], state: str) -> Block:
    """The first block whose header says the build is in `state`."""
    for block in stream:
        if f"data-build-state>{state}<" in block.html:
            return block
    raise AssertionError(f"the stream ended before the build was {state}")


def one_job_build(server: LiveServer, identity: Identity) -> None:
    create_pipeline(server, identity, "Hello")
    create_build(server, identity, "hello")


def test_two_viewers_of_a_build_get_the_new_block_after_its_job_changes(
    server: LiveServer,
) -> None:
    first, second = server.identity("acme"), server.identity("acme")
    one_job_build(server, first)
    alice, bob = signed_in(server, first), signed_in(server, second)
    alice_token, bob_token = csrf_token(alice), csrf_token(bob)
    assert alice_token != bob_token
    with (
        blocks(alice, block_url(alice)) as alice_blocks,
        blocks(bob, block_url(bob)) as bob_blocks,
    ):
        agent = ScriptedAgent.register(server.url, first.agent_token)
        job = agent.take_job()
        running = until_state(alice_blocks, "Running"), until_state(bob_blocks, "Running")
        assert server.app.state.build_feeds.followed == 1  # one feed renders for both
        assert agent.finish(job, "0").status_code == 200
        passed = until_state(alice_blocks, "Passed"), until_state(bob_blocks, "Passed")
    for alice_block, bob_block in (running, passed):
        # One rendering, two viewers: the same block but for each one's own CSRF token.
        assert alice_block.id == bob_block.id
        assert alice_token in alice_block.html and bob_token not in alice_block.html
        assert bob_token in bob_block.html and alice_token not in bob_block.html
        assert alice_block.html.replace(alice_token, bob_token) == bob_block.html
    assert 'class="state state-passed">Passed</span>' in passed[0].html  # the job's row too
    assert "Rebuild" in passed[0].html


def test_the_block_a_stream_sends_is_the_one_the_page_renders(server: LiveServer) -> None:
    identity = server.identity("acme")
    one_job_build(server, identity)
    client = signed_in(server, identity)
    url = block_url(client)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    with blocks(client, url) as stream:
        job = agent.take_job()
        assert agent.finish(job, "1").status_code == 200
        failed = until_state(stream, "Failed")
    fresh = client.get(PAGE, headers=LIVE)
    assert fresh.status_code == 200
    assert failed.html == fresh.text
    # The whole page shows the same block, and links to its stream with the block's digest.
    assert fresh.text in client.get(PAGE).text
    assert block_url(client) == f"/acme/hello/builds/1/live?have={failed.id}"


def test_a_new_stream_gets_the_current_block_unless_it_shows_it_already(
    server: LiveServer,
) -> None:
    identity = server.identity("acme")
    one_job_build(server, identity)
    client = signed_in(server, identity)
    stale = block_url(client)  # rendered while the build was scheduled
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert agent.finish(job, "1").status_code == 200
    with blocks(client, stale) as stream:  # at once, without any further event
        current = next(stream)
    assert "data-build-state>Failed<" in current.html
    assert block_url(client).endswith(f"?have={current.id}")  # what the page shows now
    # A browser reconnecting with the block it has (Last-Event-ID) is not sent it again: the
    # first block it hears is the next one, after the job is retried.
    with blocks(client, stale, headers={"Last-Event-ID": current.id}) as stream:
        retried = server.client(identity.api_token).put(
            f"/v2/organizations/acme/pipelines/hello/builds/1/jobs/{job['id']}/retry"
        )
        assert retried.status_code == 200, retried.text
        following = next(stream)
    assert following.id != current.id
    assert f'id="{retried.json()["id"]}"' in following.html


def test_a_viewer_of_another_organization_gets_no_stream(server: LiveServer) -> None:
    acme = server.identity("acme")
    outsider = server.identity("globex")
    one_job_build(server, acme)
    owner = signed_in(server, acme)
    url = block_url(owner)
    stranger = signed_in(server, outsider)
    assert stranger.get(url).status_code == 404
    assert stranger.get("/globex/hello/builds/1/live").status_code == 404
    # Signed out: 204, which tells EventSource to stop reconnecting.
    assert httpx.get(f"{server.url}{url}", timeout=60).status_code == 204


def test_a_job_changed_through_one_replica_reaches_a_stream_on_another(
    make_server: Callable[..., LiveServer], database_url: str
) -> None:
    # Each replica renders for its own streams.
    writer, watcher = writer_and_watcher(make_server, database_url)
    identity = writer.identity("acme")
    one_job_build(writer, identity)
    client = signed_in(watcher, identity)
    with blocks(client, block_url(client)) as stream:
        agent = ScriptedAgent.register(writer.url, identity.agent_token)
        assert agent.finish(agent.take_job(), "0").status_code == 200
        passed = until_state(stream, "Passed")
    assert passed.html == client.get(PAGE, headers=LIVE).text
