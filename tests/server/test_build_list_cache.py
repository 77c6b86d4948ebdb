"""Cached build JSON (builds/rendering.py) is never stale: each list is read once to fill the
cache, then something it shows is changed through the API, an agent or the database, and the
next list must show the change, on the same server and on another replica."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents.models import Agent
from kiteline.server.builds.listing import Listed
from kiteline.server.builds.models import Build
from kiteline.server.builds.rendering import (
    BuildJsonCache,
    CachedPage,
    RenderedBuild,
    Shape,
    cache_of,
)
from kiteline.server.jobs.models import Job
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.users.models import User
from tests.support.agent_protocol import ScriptedAgent
from tests.support.live_server import Identity, LiveServer

PIPELINE = "steps:\n  - command: echo one\n  - wait\n  - command: echo two\n"
LISTS = (
    "/v2/organizations/acme/pipelines/p/builds",
    "/v2/organizations/acme/builds",
    "/v2/builds",
)


def _setup(server: LiveServer) -> tuple[httpx.Client, Identity]:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    created = client.post(
        "/v2/organizations/acme/pipelines", json={"name": "P", "configuration": PIPELINE}
    )
    assert created.status_code == 201, created.text
    for _ in range(2):
        built = client.post(
            "/v2/organizations/acme/pipelines/p/builds", json={"commit": "HEAD", "branch": "main"}
        )
        assert built.status_code == 201, built.text
    return client, identity


def _lists(client: httpx.Client, **params: str) -> list[list[dict[str, Any]]]:
    """Every list that shows the builds, read (and so cached) now."""
    pages = []
    for path in LISTS:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def _newest(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """The newest build (number 2) as each list shows it, and as its own GET does."""
    shown = [page[0] for page in _lists(client, **params)]
    single = client.get("/v2/organizations/acme/pipelines/p/builds/2", params=params)
    assert single.status_code == 200, single.text
    return [*shown, single.json()]


def _db(server: LiveServer, statement: Any) -> None:
    async def run(session: AsyncSession) -> None:
        await session.execute(statement)

    server.admin(run)


def test_a_cached_page_is_the_same_bytes_as_the_first(server: LiveServer) -> None:
    client, _ = _setup(server)
    path = LISTS[0]
    first = client.get(path)
    cache: BuildJsonCache = server.app.state.build_json_cache
    page_hits, answer_hits = cache.page_hits, cache.answer_hits
    second = client.get(path)
    # The same builds at the same signatures, and every fill as it was: the answer kept.
    assert (cache.page_hits, cache.answer_hits) == (page_hits + 1, answer_hits + 1)
    assert second.content == first.content
    assert [build["number"] for build in second.json()] == [2, 1]


def test_a_kept_answer_follows_the_pipelines_live_counts(server: LiveServer) -> None:
    """The page of the newest build is unchanged when an agent starts the oldest one, but
    the nested pipeline's counts move: the page's renderings are reused, its answer is not."""
    client, identity = _setup(server)
    cache = cache_of(server.app)
    path = LISTS[0]
    pages = [client.get(path, params={"per_page": "1"}) for _ in range(2)]
    assert pages[0].content == pages[1].content
    pipeline = pages[0].json()[0]["pipeline"]
    assert (pipeline["scheduled_builds_count"], pipeline["running_builds_count"]) == (2, 0)
    assert (pipeline["scheduled_jobs_count"], pipeline["running_jobs_count"]) == (2, 0)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()  # the oldest build's first job: not on the page
    page_hits, answer_hits = cache.page_hits, cache.answer_hits
    (newest,) = client.get(path, params={"per_page": "1"}).json()
    assert (cache.page_hits, cache.answer_hits) == (page_hits + 1, answer_hits)
    assert newest["number"] == 2
    pipeline = newest["pipeline"]
    assert (pipeline["scheduled_builds_count"], pipeline["running_builds_count"]) == (1, 1)
    assert (pipeline["scheduled_jobs_count"], pipeline["running_jobs_count"]) == (1, 1)
    assert agent.finish(job, "0").status_code == 200
    pipeline = client.get(path, params={"per_page": "1"}).json()[0]["pipeline"]
    assert (pipeline["scheduled_jobs_count"], pipeline["running_jobs_count"]) == (2, 0)


def test_a_kept_answer_follows_the_host_its_urls_name(server: LiveServer) -> None:
    """Without a configured public URL the URLs come from the request's Host: the same
    page asked for under another host name is not the kept answer."""
    client, _ = _setup(server)
    path = LISTS[0]
    first = [client.get(path) for _ in range(2)]
    assert first[0].content == first[1].content
    port = server.url.rsplit(":", 1)[1]
    other = client.get(path, headers={"Host": f"localhost:{port}"})
    assert other.status_code == 200, other.text
    assert other.content != first[0].content
    for build in other.json():
        assert build["url"].startswith(f"http://localhost:{port}/v2/")
        assert build["pipeline"]["url"].startswith(f"http://localhost:{port}/v2/")
        for job in build["jobs"]:
            assert job["build_url"] == build["url"]
    again = client.get(path)
    assert again.content == first[0].content


def test_a_job_finishing_shows_in_cached_lists(server: LiveServer) -> None:
    client, identity = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token, name="runner")
    _lists(client)
    job = agent.take_job()  # the oldest build's first job
    for page in _lists(client):
        assert [build["state"] for build in page] == ["scheduled", "running"]
        assert page[1]["jobs"][0]["state"] == "running"
        assert page[1]["jobs"][0]["agent"]["name"] == "runner"
    assert agent.finish(job, "0").status_code == 200
    for page in _lists(client):
        oldest = page[1]
        assert [j["state"] for j in oldest["jobs"]] == ["passed", "passed", "scheduled"]
        assert oldest["jobs"][0]["exit_status"] == 0
        assert oldest["state"] == "running"


def test_a_retried_job_shows_in_cached_lists(server: LiveServer) -> None:
    client, identity = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    assert agent.finish(job, "1").status_code == 200
    for page in _lists(client):
        assert page[1]["state"] == "failed"
        assert [j["state"] for j in page[1]["jobs"]] == [
            "failed",
            "waiting_failed",
            "waiting_failed",
        ]
    retried = client.put(f"/v2/organizations/acme/pipelines/p/builds/1/jobs/{job['id']}/retry")
    assert retried.status_code == 200, retried.text
    for page in _lists(client):
        assert page[1]["state"] == "running"
        assert page[1]["jobs"][0]["id"] == retried.json()["id"]
        assert [j["state"] for j in page[1]["jobs"]] == ["scheduled", "waiting", "waiting"]
        assert page[1]["jobs"][0]["retry_source"]["job_id"] == job["id"]
    with_retried = _lists(client, include_retried_jobs="true")
    for page in with_retried:
        first = page[1]["jobs"][0]
        assert (first["id"], first["retried"]) == (job["id"], True)
        assert first["retried_in_job_id"] == retried.json()["id"]


def test_a_canceled_build_shows_in_cached_lists(server: LiveServer) -> None:
    client, _ = _setup(server)
    before = _newest(client)
    assert {build["state"] for build in before} == {"scheduled"}
    canceled = client.put("/v2/organizations/acme/pipelines/p/builds/2/cancel")
    assert canceled.status_code == 200, canceled.text
    for build in _newest(client):
        assert build["state"] == "canceled"
        assert [j["state"] for j in build["jobs"]] == ["canceled", "canceled", "canceled"]
    assert _newest(client)[-1]["job_state_counts"] == {"total": 3, "states": {"canceled": 3}}


def test_meta_data_set_through_the_api_or_an_agent_shows_in_cached_lists(
    server: LiveServer,
) -> None:
    client, identity = _setup(server)
    assert {str(build["meta_data"]) for build in _newest(client)} == {"{}"}
    response = client.post(
        "/v2/organizations/acme/pipelines/p/builds/2/meta-data",
        json={"key": "release", "value": "1.0"},
    )
    assert response.status_code in (200, 201, 204), response.text
    for build in _newest(client):
        assert build["meta_data"] == {"release": "1.0"}
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()  # build 1's first job
    agent.call(
        "POST", f"/jobs/{job['id']}/data/set", token=job["token"], json={"key": "k", "value": "v"}
    ).raise_for_status()
    assert [page[1]["meta_data"] for page in _lists(client)] == [{"k": "v"}] * 3
    agent.call(
        "POST", f"/jobs/{job['id']}/data/set", token=job["token"], json={"key": "k", "value": "w"}
    ).raise_for_status()
    assert [page[1]["meta_data"] for page in _lists(client)] == [{"k": "w"}] * 3


def test_a_renamed_pipeline_shows_in_cached_lists(server: LiveServer) -> None:
    client, _ = _setup(server)
    _newest(client)
    renamed = client.patch("/v2/organizations/acme/pipelines/p", json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    for build in _newest(client):
        assert build["pipeline"]["name"] == "Renamed"
    # A new slug (no API changes it yet, another replica or a migration might) moves every URL.
    _db(server, update(Pipeline).where(Pipeline.slug == "p").values(slug="q"))
    pages = [
        client.get(path.replace("/p/", "/q/")).json()
        for path in ("/v2/organizations/acme/pipelines/p/builds", *LISTS[1:])
    ]
    for page in pages:
        build = page[0]
        assert build["url"].endswith("/v2/organizations/acme/pipelines/q/builds/2")
        assert build["web_url"].endswith("/acme/q/builds/2")
        assert build["pipeline"]["slug"] == "q"
        for job in build["jobs"]:
            assert job["build_url"] == build["url"]
            if job["type"] == "script":
                assert job["log_url"] == f"{build['url']}/jobs/{job['id']}/log"
        assert "/pipelines/p/" not in str(page) and "/acme/p/" not in str(page)


def test_an_agent_changing_shows_in_cached_lists(server: LiveServer) -> None:
    client, identity = _setup(server)
    agent = ScriptedAgent.register(server.url, identity.agent_token, name="first-name")
    agent.take_job()
    shown = [page[1]["jobs"][0]["agent"] for page in _lists(client)]
    assert {(a["name"], a["connection_state"]) for a in shown} == {("first-name", "connected")}
    _db(server, update(Agent).where(Agent.id == uuid.UUID(agent.id)).values(name="second-name"))
    shown = [page[1]["jobs"][0]["agent"] for page in _lists(client)]
    assert {a["name"] for a in shown} == {"second-name"}
    agent.call("POST", "/disconnect").raise_for_status()
    shown = [page[1]["jobs"][0]["agent"] for page in _lists(client)]
    assert {a["connection_state"] for a in shown} == {"disconnected"}


def test_a_renamed_creator_shows_in_cached_lists(server: LiveServer) -> None:
    client, identity = _setup(server)
    assert {build["creator"]["name"] for build in _newest(client)} == {"Test User"}
    _db(server, update(User).where(User.email == identity.email).values(name="New Name"))
    assert {build["creator"]["name"] for build in _newest(client)} == {"New Name"}
    assert {build["pipeline"]["created_by"]["name"] for build in _newest(client)} == {"New Name"}


def test_a_job_added_or_removed_without_touching_the_build_shows(server: LiveServer) -> None:
    """The signature lists the jobs' ids: a job replaced by another with the same revision
    (as a pipeline upload with `replace` does) is not mistaken for it."""
    client, _ = _setup(server)
    before = _newest(client)[0]["jobs"]
    last = uuid.UUID(before[-1]["id"])

    async def replace_last_job(session: AsyncSession) -> None:
        job = await session.get(Job, last)
        assert job is not None
        fields = {c.key: getattr(job, c.key) for c in Job.__table__.columns if c.key != "id"}
        await session.delete(job)
        await session.flush()
        session.add(Job(id=uuid.uuid4(), **{**fields, "label": "replacement", "revision": 0}))

    server.admin(replace_last_job)
    for build in _newest(client):
        assert build["jobs"][-1]["label"] == "replacement"
        assert build["jobs"][-1]["id"] != str(last)


def test_revisions_are_bumped_by_orm_flushes_and_core_updates(server: LiveServer) -> None:
    _setup(server)

    async def revisions(session: AsyncSession) -> list[int]:
        build = (await session.scalars(select(Build).where(Build.number == 2))).one()
        job = (await session.scalars(select(Job).where(Job.build_id == build.id))).first()
        assert job is not None
        start = [
            await session.scalar(select(Build.revision).where(Build.id == build.id)),
            await session.scalar(select(Job.revision).where(Job.id == job.id)),
        ]
        bumps = []
        for change in range(2):
            build.message = f"changed {change}"
            job.label = f"changed {change}"
            await session.flush()  # the ORM's UPDATE
            await session.execute(  # a Core UPDATE, as `jobs.service.claim_next` sends
                update(Job).where(Job.id == job.id).values(priority=change)
            )
            await session.execute(update(Build).where(Build.id == build.id).values(tag="t"))
            bumps += [
                await session.scalar(select(Build.revision).where(Build.id == build.id)) - start[0],
                await session.scalar(select(Job.revision).where(Job.id == job.id)) - start[1],
            ]
        return bumps

    assert server.admin(revisions) == [2, 2, 4, 4]


def test_a_change_through_one_replica_shows_in_the_others_cached_list(
    make_server: Callable[..., LiveServer],
) -> None:
    first = make_server()
    second = make_server()  # same database; its own cache, as another process has
    client, identity = _setup(first)
    other = second.client(identity.api_token)
    assert [build["state"] for build in other.get(LISTS[0]).json()] == ["scheduled"] * 2
    ScriptedAgent.register(first.url, identity.agent_token).pass_a_job()
    client.put("/v2/organizations/acme/pipelines/p/builds/2/cancel").raise_for_status()
    client.post(
        "/v2/organizations/acme/pipelines/p/builds/2/meta-data", json={"key": "a", "value": "b"}
    ).raise_for_status()
    newest, oldest = other.get(LISTS[0]).json()
    assert (newest["state"], newest["meta_data"]) == ("canceled", {"a": "b"})
    assert [j["state"] for j in oldest["jobs"]] == ["passed", "passed", "scheduled"]
    single = other.get("/v2/organizations/acme/pipelines/p/builds/1").json()
    assert single["job_state_counts"]["states"] == {"passed": 2, "scheduled": 1}


def _entry(size: int) -> RenderedBuild:
    return RenderedBuild((0, ()), uuid.uuid4(), uuid.uuid4(), b"x" * size, (), frozenset(), size)


def test_the_cache_keeps_to_its_bounds_and_forgets_the_least_recently_used() -> None:
    cache = BuildJsonCache(max_entries=3, max_bytes=10_000)
    shape = Shape()
    for key in "abc":
        cache.put(key, shape, _entry(100))
    assert cache.get("a", shape, (0, ())) is not None  # now the most recently used
    cache.put("d", shape, _entry(100))
    assert len(cache) == 3
    assert cache.get("b", shape, (0, ())) is None
    assert cache.get("a", shape, (1, ())) is None  # another signature: not this entry
    cache.put("e", shape, _entry(5_000))
    cache.put("f", shape, _entry(5_000))
    assert len(cache) <= 3
    assert cache.get("e", shape, (0, ())) is None  # pushed out by bytes, not by count
    cache.put("huge", shape, _entry(9_000))  # more than an eighth of the budget: not kept
    assert cache.get("huge", shape, (0, ())) is None


def test_kept_pages_keep_to_their_bounds() -> None:
    cache = BuildJsonCache(max_pages=2, max_page_bytes=80_000)
    shape = Shape()
    listed = [(Listed(key, (0, ())),) for key in "abc"]
    pages = [CachedPage([_entry(10)], frozenset()) for _ in listed]
    for signature, page in zip(listed, pages, strict=True):
        cache.put_page(shape, signature, page)
    assert cache.page(shape, listed[0]) is None  # the least recently used, out by count
    assert cache.page(shape, listed[1]) is pages[1]
    cache.keep_answer(pages[1], {}, b"x" * 9_000)  # below an eighth of the budget: kept
    assert pages[1].body == b"x" * 9_000
    cache.keep_answer(pages[2], {}, b"y" * 20_000)  # above it: not kept
    assert pages[2].body is None
    cache.keep_answer(pages[0], {}, b"z" * 10)  # pushed out already: not kept
    assert pages[0].body is None
    assert cache.page(shape, (Listed("a", (1, ())),)) is None  # another signature
