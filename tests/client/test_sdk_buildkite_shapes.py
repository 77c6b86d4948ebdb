"""The SDK against what api.buildkite.com answers: Buildkite's JSON (recorded in
buildkite_responses.json), its `Link` pagination, its errors and 429s, its artifact redirects to
another host, served over real HTTP by a stand-in in a thread."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiteline.client import (
    AsyncClient,
    Client,
    GraphQLError,
    KitelineClientError,
    RateLimited,
    Unauthorized,
    Unprocessable,
)
from tests.client.recorded_api import RECORDED, Answer, RecordedApi, recorded_api

ORG = "my-great-org"
BUILDS = f"/v2/organizations/{ORG}/pipelines/my-pipeline/builds"
BUILDKITE_BUILDS = f"https://api.buildkite.com{BUILDS}"
JOB_ID = RECORDED["build"]["jobs"][0]["id"]
ARTIFACT_CONTENT = b"".join(b"%05d fake tarball line\n" % i for i in range(2000))


@pytest.fixture
def api() -> Iterator[RecordedApi]:
    with recorded_api() as recorded:
        yield recorded


@pytest.fixture
def client(api: RecordedApi) -> Iterator[Client]:
    with Client(rest_url=f"{api.url}/v2", token="bkua_recorded", org=ORG) as sdk:
        yield sdk


def _build(number: int) -> dict[str, Any]:
    build = copy.deepcopy(RECORDED["build"])
    build["number"] = number
    build["url"] = f"{BUILDKITE_BUILDS}/{number}"
    return build


def _links(**pages: int) -> str:
    """Buildkite's exact form: `<url>; rel="next", <url>; rel="last"`."""
    return ", ".join(
        f'<{BUILDKITE_BUILDS}?page={page}&per_page=2>; rel="{rel}"' for rel, page in pages.items()
    )


def test_a_build_with_its_jobs_and_pipeline_parses_into_typed_models(
    api: RecordedApi, client: Client
) -> None:
    api.answer("GET", f"{BUILDS}/1", Answer(body=RECORDED["build"]))

    build = client.build("my-pipeline", 1)

    assert (build.number, build.state, build.branch, build.source) == (
        1,
        "passed",
        "main",
        "webhook",
    )
    assert build.finished_at == datetime(2015, 5, 9, 21, 10, 59, 874000, tzinfo=UTC)
    assert build.finished is True
    assert build.meta_data == {"release-version": "0.2-beta.6"}
    assert build.creator is not None and build.creator.email == "keith@buildkite.com"
    assert [(job.type, job.state) for job in build.jobs] == [
        ("script", "passed"),
        ("waiter", "passed"),
        ("manual", "unblocked"),
    ]
    script, waiter, manual = build.jobs
    assert (script.exit_status, script.agent_query_rules) == (0, ["queue=default"])
    assert script.agent is not None and script.agent.name == "my-agent"
    assert waiter.finished_at is None and waiter.name is None
    assert manual.unblocked_by is not None and manual.unblocked_by.name == "Keith Pitt"
    assert build.pipeline is not None and build.pipeline.slug == "my-pipeline"
    # Buildkite's docs still show pipelines with the older timestamp form.
    assert build.pipeline.created_at == datetime(2013, 9, 3, 13, 24, 38, tzinfo=UTC)


def test_fields_the_models_do_not_name_are_kept(api: RecordedApi, client: Client) -> None:
    api.answer("GET", f"{BUILDS}/1", Answer(body=RECORDED["build"]))

    build = client.build("my-pipeline", 1)

    assert build.model_extra is not None
    assert (build.model_extra["blocked_state"], build.model_extra["merge_queue"]) == ("", None)
    assert build.jobs[0].model_extra is not None
    assert build.jobs[0].model_extra["step"]["signature"]["algorithm"] == "EdDSA"
    assert build.jobs[0].model_extra["priority"] == {"number": 0}
    assert build.pipeline is not None and build.pipeline.model_extra is not None
    assert build.pipeline.model_extra["cluster_url"] == (
        f"https://api.buildkite.com/v2/organizations/{ORG}/clusters/{build.pipeline.cluster_id}"
    )
    assert build.model_dump()["job_state_counts"] == {
        "total": 3,
        "states": {"passed": 2, "unblocked": 1},
    }


async def test_builds_follow_buildkites_link_header_to_the_last_page(api: RecordedApi) -> None:
    api.answer(
        "GET",
        f"{BUILDS}?per_page=2",
        Answer(body=[_build(5), _build(4)], headers={"Link": _links(next=2, last=3)}),
    )
    api.answer(
        "GET",
        f"{BUILDS}?page=2&per_page=2",
        Answer(
            body=[_build(3), _build(2)],
            headers={"Link": _links(first=1, prev=1, next=3, last=3)},
        ),
    )
    api.answer(
        "GET",
        f"{BUILDS}?page=3&per_page=2",
        Answer(body=[_build(1)], headers={"Link": _links(first=1, prev=2)}),
    )

    async with AsyncClient(rest_url=f"{api.url}/v2", token="bkua_recorded", org=ORG) as sdk:
        numbers = [build.number async for build in sdk.builds("my-pipeline", per_page=2)]

    assert numbers == [5, 4, 3, 2, 1]
    # The links name api.buildkite.com; they are followed on the host the client was given.
    assert [seen.target for seen in api.requests] == [
        f"{BUILDS}?per_page=2",
        f"{BUILDS}?page=2&per_page=2",
        f"{BUILDS}?page=3&per_page=2",
    ]
    assert {seen.headers["authorization"] for seen in api.requests} == {"Bearer bkua_recorded"}


def test_filters_are_sent_as_buildkites_query_strings(api: RecordedApi, client: Client) -> None:
    target = (
        f"/v2/organizations/{ORG}/builds?state%5B%5D=passed&state%5B%5D=failed&branch=main"
        "&created_from=2015-05-09T00%3A00%3A00Z&meta_data%5Brelease-version%5D=0.2-beta.6"
        "&include_retried_jobs=true&per_page=100"
    )
    api.answer("GET", target, Answer(body=[RECORDED["build"]]))

    found = client.builds(
        org=ORG,
        state=["passed", "failed"],
        branch="main",
        meta_data={"release-version": "0.2-beta.6"},
        include_retried_jobs=True,
        created_from=datetime(2015, 5, 9, tzinfo=UTC),
    )

    assert [build.number for build in found] == [1]
    assert [seen.target for seen in api.requests] == [target]


def test_an_artifact_download_follows_the_redirect_without_the_token(
    api: RecordedApi, client: Client, tmp_path: Path
) -> None:
    artifact = RECORDED["artifact"]
    with recorded_api() as storage:  # another host, as S3 is
        signed = "/bucket/pkg/my-pipeline-0.2.0.tar.gz?X-Amz-Signature=abc123"
        storage.answer("GET", signed, Answer(body=ARTIFACT_CONTENT))
        api.answer("GET", f"{BUILDS}/1/artifacts?per_page=100", Answer(body=[artifact]))
        download = f"{BUILDS}/1/jobs/{JOB_ID}/artifacts/{artifact['id']}/download"
        api.answer(
            "GET",
            download,
            Answer(302, {"url": storage.url + signed}, {"Location": storage.url + signed}),
        )

        paths = client.download_artifacts("my-pipeline", 1, "pkg/*.tar.gz", tmp_path)

    assert paths == [tmp_path / "pkg" / "my-pipeline-0.2.0.tar.gz"]
    assert paths[0].read_bytes() == ARTIFACT_CONTENT
    assert hashlib.sha1(ARTIFACT_CONTENT).hexdigest() == artifact["sha1sum"]
    assert [(seen.target, "authorization" in seen.headers) for seen in api.requests] == [
        (f"{BUILDS}/1/artifacts?per_page=100", True),
        (download, True),
    ]
    assert [(seen.target, "authorization" in seen.headers) for seen in storage.requests] == [
        (signed, False)
    ]


def test_an_artifact_path_no_file_can_have_stops_the_download_before_any_byte(
    api: RecordedApi, client: Client, tmp_path: Path
) -> None:
    good = RECORDED["artifact"]
    odd = {**good, "id": "odd", "path": "pkg/a\u0000b.tar.gz"}
    api.answer("GET", f"{BUILDS}/1/artifacts?per_page=100", Answer(body=[good, odd]))

    with pytest.raises(KitelineClientError) as refused:
        client.download_artifacts("my-pipeline", 1, "pkg/*", tmp_path)

    assert str(refused.value) == (
        "refusing to write artifact odd at 'pkg/a\\x00b.tar.gz': not a file name this "
        "system can hold; choose others with --pattern"
    )
    assert list(tmp_path.iterdir()) == []
    assert [seen.target for seen in api.requests] == [f"{BUILDS}/1/artifacts?per_page=100"]


def test_agents_parse_with_buildkites_meta_data_list(api: RecordedApi, client: Client) -> None:
    api.answer(
        "GET", f"/v2/organizations/{ORG}/agents?per_page=100", Answer(body=[RECORDED["agent"]])
    )

    (agent,) = client.agents()

    assert (agent.name, agent.connection_state, agent.version) == (
        "my-agent",
        "connected",
        "3.75.0",
    )
    assert agent.meta_data == ["queue=default", "os=linux", "docker=true"]
    assert agent.model_extra is not None and agent.model_extra["paused_note"] is None


def test_pipeline_organization_and_token_parse(api: RecordedApi, client: Client) -> None:
    api.answer(
        "GET", f"/v2/organizations/{ORG}/pipelines/my-pipeline", Answer(body=RECORDED["pipeline"])
    )
    api.answer("GET", f"/v2/organizations/{ORG}", Answer(body=RECORDED["organization"]))
    api.answer("GET", "/v2/access-token", Answer(body=RECORDED["access_token"]))

    pipeline = client.pipeline("my-pipeline")
    organization = client.organization()
    token = client.access_token()

    assert pipeline.provider is not None
    assert (pipeline.default_branch, pipeline.provider["id"]) == ("main", "github")
    assert pipeline.steps is not None and pipeline.steps[0]["command"] == "scripts/build.sh"
    assert (organization.slug, organization.name) == (ORG, "My Great Org")
    assert token.scopes == ["read_builds", "read_artifacts", "read_user"]
    assert token.created_at == datetime(2018, 7, 1, 20, 14, 38, tzinfo=UTC)
    assert token.user is not None and token.user.email == "keith@buildkite.com"


def test_errors_carry_buildkites_message_and_body(api: RecordedApi, client: Client) -> None:
    unauthorized = (
        "Authentication required. Please supply a valid API Access Token: "
        "https://buildkite.com/docs/apis/rest-api#authentication"
    )
    api.answer("GET", "/v2/user", Answer(401, {"message": unauthorized}))
    invalid = {
        "message": "Validation Failed",
        "errors": [{"field": "configuration", "code": "Step configuration is missing"}],
    }
    api.answer("POST", f"/v2/organizations/{ORG}/pipelines", Answer(422, invalid))

    with pytest.raises(Unauthorized) as denied:
        client.user()
    with pytest.raises(Unprocessable) as refused:
        client.create_pipeline("Empty", repository="git@github.com:my-great-org/empty.git")

    assert (denied.value.status, denied.value.message) == (401, unauthorized)
    assert (refused.value.status, refused.value.message) == (422, "Validation Failed")
    assert refused.value.errors == invalid["errors"]
    assert refused.value.body == invalid


def test_a_429_is_retried_after_ratelimit_reset(api: RecordedApi, client: Client) -> None:
    exceeded = {
        "message": "You have exceeded your API rate limit. Please wait 1 seconds before making "
        "more requests.",
        "scope": "rest",
        "limit": 200,
        "current": 201,
        "reset": 1,
    }
    limited = Answer(
        429,
        exceeded,
        {"RateLimit-Remaining": "0", "RateLimit-Limit": "200", "RateLimit-Reset": "1"},
    )
    api.answer("GET", f"/v2/organizations/{ORG}", limited, Answer(body=RECORDED["organization"]))
    started = time.monotonic()

    organization = client.organization()

    assert organization.slug == ORG
    assert len(api.requests) == 2
    assert time.monotonic() - started >= 1


def test_graphql_goes_to_the_graphql_host_and_raises_its_errors(api: RecordedApi) -> None:
    with recorded_api() as graphql:
        data = {"viewer": {"user": {"name": "Keith Pitt"}}}
        problem = {"message": "Field 'nope' doesn't exist on type 'Query'", "locations": []}
        graphql.answer(
            "POST", "/v1", Answer(body={"data": data}), Answer(body={"errors": [problem]})
        )
        with Client(
            rest_url=f"{api.url}/v2", graphql_url=f"{graphql.url}/v1", token="bkua_recorded"
        ) as sdk:
            answer = sdk.graphql("query { viewer { user { name } } }")
            with pytest.raises(GraphQLError) as failed:
                sdk.graphql("query { nope }", {"unused": 1})

    assert answer == data
    assert failed.value.errors == [problem]
    assert [(seen.headers["authorization"], seen.body) for seen in graphql.requests] == [
        ("Bearer bkua_recorded", b'{"query":"query { viewer { user { name } } }","variables":{}}'),
        ("Bearer bkua_recorded", b'{"query":"query { nope }","variables":{"unused":1}}'),
    ]


def test_rate_limited_is_raised_when_the_reset_is_further_than_the_client_may_wait(
    api: RecordedApi,
) -> None:
    limited = Answer(
        429,
        {"message": "You have exceeded your API rate limit."},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": "42"},
    )
    api.answer("GET", "/v2/user", limited)

    with (
        Client(rest_url=f"{api.url}/v2", token="t", max_rate_limit_wait=10) as sdk,
        pytest.raises(RateLimited) as limited_error,
    ):
        sdk.user()

    assert (limited_error.value.status, limited_error.value.retry_after) == (429, 42)
    assert len(api.requests) == 1
