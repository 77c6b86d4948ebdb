"""The SDK against a real Kiteline: a `kiteline server` process with a real agent running the
jobs (trigger, wait, logs, artifacts, GraphQL), and in-thread servers for pagination over
hundreds of builds and for rate limits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from limits import RateLimitItemPerMinute

from kiteline.client import (
    Artifact,
    AsyncClient,
    Build,
    ChecksumMismatch,
    Client,
    KitelineClientError,
    RateLimited,
)
from kiteline.client.operations.artifacts import artifact_destination
from tests.support.databases import backends, fresh_database
from tests.support.live_server import LiveServer, start_live_server
from tests.support.processes import wait_until
from tests.support.stack import ORG, Stack, stack
from tests.support.webhook_receiver import receiver

REPORT = "report line 1\nreport line 2\nreport line 3\n"

# Writes two artifacts, then holds until the test releases it, so that the first poll of
# `wait_for_build` always sees the build unfinished.
PRODUCE = """
steps:
  - label: produce
    artifact_paths: "out/*"
    command: |
      echo "hello from the kiteline sdk"
      mkdir -p out
      printf 'report line %s\\n' 1 2 3 > out/report.txt
      printf 'tamper me\\n' > out/tamper.bin
      while [ ! -f {release} ]; do sleep 0.05; done
"""

STREAMED = """
steps:
  - label: streamed
    command: |
      echo "first line"
      while [ ! -f {release} ]; do sleep 0.05; done
      echo "second line"
"""


@dataclass
class Finished:
    """The build of PRODUCE, triggered and waited for through the SDK."""

    kiteline: Stack
    build: Build
    progress: list[Build]

    def client(self, **options: Any) -> Client:
        return Client(self.kiteline.url, self.kiteline.api_token, org=ORG, **options)

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.kiteline.url, self.kiteline.api_token, org=ORG)


@pytest.fixture(scope="module", params=backends())
def kiteline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One server process and one agent for the module's agent-run builds."""
    with (
        fresh_database(request.param, tmp_path_factory.mktemp("database")) as database_url,
        stack(database_url, tmp_path_factory.mktemp("kiteline")) as running,
    ):
        running.start_agent("runner")
        yield running


@pytest.fixture(scope="module")
def finished(kiteline: Stack) -> Finished:
    release = kiteline.work_dir / "release-produce"
    progress: list[Build] = []

    def on_progress(build: Build) -> None:
        progress.append(build)
        release.touch()

    with Client(kiteline.url, kiteline.api_token, org=ORG) as client:
        client.create_pipeline("SDK", configuration=PRODUCE.format(release=release))
        triggered = client.trigger_build("sdk", message="from the SDK", env={"FROM": "sdk"})
        build = client.wait_for_build(
            "sdk", triggered.number, timeout=120, poll_interval=0.1, on_progress=on_progress
        )
    return Finished(kiteline, build, progress)


def test_wait_for_build_returns_the_passed_build_and_reports_each_poll(
    finished: Finished,
) -> None:
    build, progress = finished.build, finished.progress
    assert (build.number, build.state, build.message) == (1, "passed", "from the SDK")
    assert build.env == {"FROM": "sdk"}
    assert [(job.name, job.state, job.exit_status) for job in build.jobs] == [
        ("produce", "passed", 0)
    ]
    assert progress[0].finished_at is None
    assert progress[-1] == build
    assert {poll.number for poll in progress} == {1}


def test_job_log_is_the_jobs_output(finished: Finished) -> None:
    with finished.client() as client:
        log = client.job_log("sdk", 1, finished.build.jobs[0].id)
    assert "hello from the kiteline sdk\n" in log


async def test_download_artifacts_writes_the_uploaded_files(
    finished: Finished, tmp_path: Path
) -> None:
    async with finished.async_client() as client:
        paths = await client.download_artifacts("sdk", 1, "out/*.txt", tmp_path / "got")
        listed = [artifact.path async for artifact in client.artifacts("sdk", 1)]
    assert paths == [tmp_path / "got" / "out" / "report.txt"]
    assert paths[0].read_text() == REPORT
    assert sorted(listed) == ["out/report.txt", "out/tamper.bin"]


def test_a_download_whose_sha1_differs_is_refused_and_removed(
    finished: Finished, tmp_path: Path
) -> None:
    with finished.client() as client:
        (artifact,) = client.artifacts("sdk", 1, path="out/tamper.bin")
        # The blob store's copy changes under the server (same length, other bytes).
        blobs = finished.kiteline.data_dir / "blobs" / "artifacts"
        (blob,) = blobs.glob(f"*/*/{artifact.id}")
        blob.write_bytes(b"TAMPER ME\n")
        with pytest.raises(ChecksumMismatch) as mismatch:
            client.download_artifacts("sdk", 1, "out/tamper.bin", tmp_path)
    assert (mismatch.value.path, mismatch.value.expected) == (
        tmp_path / "out" / "tamper.bin",
        artifact.sha1sum,
    )
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_graphql_returns_the_pipeline_and_its_build(finished: Finished) -> None:
    query = """
      query($slug: ID!) {
        pipeline(slug: $slug) { name slug builds(first: 1) { edges { node { number state } } } }
      }
    """
    with finished.client() as client:
        data = client.graphql(query, {"slug": f"{ORG}/sdk"})
    assert data == {
        "pipeline": {
            "name": "SDK",
            "slug": "sdk",
            "builds": {"edges": [{"node": {"number": 1, "state": "PASSED"}}]},
        }
    }


async def test_stream_log_yields_the_log_as_the_job_writes_it(finished: Finished) -> None:
    release = finished.kiteline.work_dir / "release-streamed"
    chunks: list[str] = []
    before_release = ""
    async with finished.async_client() as client:
        await client.create_pipeline("Streamed", configuration=STREAMED.format(release=release))
        build = await client.trigger_build("streamed")
        job_id = build.jobs[0].id
        async for text in client.stream_log("streamed", build.number, job_id, poll_interval=0.1):
            chunks.append(text)
            if "first line" in "".join(chunks).splitlines() and not release.exists():
                before_release = "".join(chunks)
                release.touch()
        log = await client.job_log("streamed", build.number, job_id)
    # Lines as the job printed them (the log also shows the commands, quotes and all).
    assert "first line" in before_release.splitlines()
    assert "second line" not in before_release.splitlines()
    assert "".join(chunks) == log
    assert log.splitlines().index("first line") < log.splitlines().index("second line")


def _create_builds(pipeline: str, count: int) -> Callable[[Any], Any]:
    """Builds made through the builds service in one transaction: quicker than 250 POSTs."""

    async def create(session: Any) -> None:
        from kiteline.server.builds import service as builds
        from kiteline.server.organizations.service import get_by_slug
        from kiteline.server.pipelines import service as pipelines

        organization = await get_by_slug(session, ORG)
        found = await pipelines.get(session, organization_id=organization.id, slug=pipeline)
        for _ in range(count):
            await builds.create(
                session,
                organization=organization,
                pipeline=found,
                creator_id=None,
                new=builds.NewBuild(commit="HEAD", branch="main"),
            )

    return create


@pytest.fixture(scope="module", params=backends())
def many_builds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """A server whose pipeline `many` has 250 builds, no agent ever taking their jobs."""
    with fresh_database(request.param, tmp_path_factory.mktemp("database")) as database_url:
        server = start_live_server(database_url, tmp_path_factory.mktemp("data"))
        try:
            token = server.identity(ORG).api_token
            with Client(server.url, token, org=ORG) as client:
                client.create_pipeline("Many", configuration="steps:\n  - command: echo hi\n")
            server.admin(_create_builds("many", 250))
            yield server, token
        finally:
            server.stop()


def test_builds_follow_next_links_through_every_page(many_builds: tuple[LiveServer, str]) -> None:
    server, token = many_builds
    requested: list[str] = []
    hooks = {"event_hooks": {"request": [lambda request: requested.append(str(request.url))]}}
    with Client(server.url, token, org=ORG, http_options=hooks) as client:
        numbers = [build.number for build in client.builds("many", exclude_pipeline=True)]
    assert sorted(numbers) == list(range(1, 251))
    assert numbers == sorted(numbers, reverse=True)
    builds = f"{server.url}/v2/organizations/{ORG}/pipelines/many/builds"
    assert requested == [
        f"{builds}?exclude_pipeline=true&per_page=100",
        f"{builds}?exclude_pipeline=true&page=2&per_page=100",
        f"{builds}?exclude_pipeline=true&page=3&per_page=100",
    ]


async def test_async_builds_follow_next_links_through_every_page(
    many_builds: tuple[LiveServer, str],
) -> None:
    server, token = many_builds
    requested: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requested.append(request)

    hooks = {"event_hooks": {"request": [record]}}
    async with AsyncClient(server.url, token, org=ORG, http_options=hooks) as client:
        numbers = [build.number async for build in client.builds(org=ORG, exclude_jobs=True)]
    assert len(numbers) == len(set(numbers)) == 250
    assert [request.url.params.get("page") for request in requested] == [None, "2", "3"]


class RateLimitedServer:
    """A server allowing one request a minute to the organization, already spent."""

    limit = 1

    def __init__(self, make_server: Callable[..., LiveServer]) -> None:
        self.server = make_server(rate_limit_org_per_minute=self.limit)
        self.token = self.server.identity(ORG).api_token
        with self.server.client(self.token) as raw:
            assert raw.get(f"/v2/organizations/{ORG}").status_code == 200

    def window_ends_in(self, seconds: float) -> None:
        """Bring the end of the current one-minute window closer, so tests need not wait a
        minute for it: the server's limits storage, not the client, is changed."""
        storage = self.server.app.state.rate_limiter.storage
        key = RateLimitItemPerMinute(self.limit).key_for("rest", f"org:{ORG}")
        storage.expirations[key] = time.time() + seconds


@pytest.fixture
def limited(make_server: Callable[..., LiveServer]) -> RateLimitedServer:
    return RateLimitedServer(make_server)


def test_a_429_waits_for_ratelimit_reset_and_then_succeeds(limited: RateLimitedServer) -> None:
    limited.window_ends_in(1.5)
    answers: list[tuple[int, str | None, float]] = []

    def record(response: httpx.Response) -> None:
        reset = response.headers.get("RateLimit-Reset")
        answers.append((response.status_code, reset, time.monotonic()))

    hooks = {"event_hooks": {"response": [record]}}
    with Client(
        limited.server.url, limited.token, max_rate_limit_wait=5, http_options=hooks
    ) as client:
        organization = client.organization(ORG)

    assert organization.slug == ORG
    assert [(status, reset) for status, reset, _ in answers] == [(429, "2"), (200, "60")]
    assert answers[1][2] - answers[0][2] >= 2  # it waited as long as the server said


def test_rate_limited_is_raised_when_the_client_may_not_wait(limited: RateLimitedServer) -> None:
    with (
        Client(limited.server.url, limited.token, max_rate_limit_wait=0) as client,
        pytest.raises(RateLimited) as refused,
    ):
        client.organization(ORG)
    reset = refused.value.retry_after
    assert reset is not None and 0 < reset <= 60
    assert refused.value.status == 429
    assert refused.value.message == (
        f"You have exceeded your API rate limit. Please wait {reset:g} seconds before making "
        "more requests."
    )
    assert refused.value.body == {
        "message": refused.value.message,
        "scope": "rest",
        "limit": 1,
        "current": 2,
        "reset": reset,
    }


async def test_rate_limited_is_raised_once_retries_are_spent(limited: RateLimitedServer) -> None:
    statuses: list[int] = []

    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    hooks = {"event_hooks": {"response": [record]}}
    async with AsyncClient(
        limited.server.url, limited.token, max_retries=0, http_options=hooks
    ) as client:
        with pytest.raises(RateLimited) as refused:
            await client.organization(ORG)
    assert (refused.value.status, statuses) == (429, [429])


def test_a_block_steps_prompt_and_fields_are_typed(kiteline: Stack) -> None:
    gate = (
        "steps:\n  - block: Release?\n    prompt: Which version?\n"
        "    fields:\n      - text: Version\n        key: version\n        default: '1.0'\n"
    )
    with Client(kiteline.url, kiteline.api_token, org=ORG) as client:
        client.create_pipeline("Gate", configuration=gate)
        (job,) = client.trigger_build("gate").jobs
    assert (job.type, job.state, job.prompt) == ("manual", "blocked", "Which version?")
    assert [(field["key"], field["text"], field["default"]) for field in job.fields] == [
        ("version", "Version", "1.0")
    ]


def test_artifact_destination_keeps_paths_inside_the_folder(tmp_path: Path) -> None:
    inside = Artifact(id="a", path="out/report.txt")
    assert artifact_destination(tmp_path, inside) == tmp_path / "out" / "report.txt"
    for path in ("../escape.txt", "/etc/passwd"):
        with pytest.raises(KitelineClientError, match="outside"):
            artifact_destination(tmp_path, Artifact(id="b", path=path))


def test_webhooks_are_created_listed_page_by_page_and_redelivered(server: LiveServer) -> None:
    token = server.identity(ORG).api_token
    requested: list[httpx.Request] = []
    hooks = {"event_hooks": {"request": [requested.append]}}
    with receiver() as hook, Client(server.url, token, org=ORG, http_options=hooks) as client:
        pipeline = client.create_pipeline("Hooked", configuration="steps:\n  - command: x\n")
        scoped = client.create_webhook(
            hook.url,
            events=["build.finished"],
            token_mode="signature",
            secret="s3cret",
            description="scoped",
            pipeline_ids=[str(pipeline.id)],
        )
        settings = scoped["settings"]
        assert (settings["events"], settings["token_mode"], settings["token"]) == (
            ["build.finished"],
            "signature",
            "s3cret",
        )
        assert (scoped["scope"], scoped["description"]) == ("some_projects", "scoped")
        every = client.create_webhook(hook.url)
        assert every["settings"]["token_mode"] == "sha256"
        assert every["settings"]["token"]
        requested.clear()
        listed = [webhook["id"] for webhook in client.webhooks(per_page=1)]
        assert sorted(listed) == sorted([scoped["id"], every["id"]])
        pages = [(r.url.params.get("per_page"), "after" in r.url.params) for r in requested]
        assert pages == [("1", False), ("1", True)]
        ping = wait_until(
            lambda: next(iter(client.webhook_deliveries(scoped["id"], state="succeeded")), None),
            what="the ping to be delivered",
        )
        again = client.redeliver(scoped["id"], ping["id"])
        assert (again["event"], again["redelivery_of"]) == ("ping", ping["id"])
        delivered = [d["id"] for d in client.webhook_deliveries(scoped["id"], per_page=1)]
        assert delivered == [again["id"], ping["id"]]
