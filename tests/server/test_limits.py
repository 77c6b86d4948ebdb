"""The size limits (kit/limits.py): each refused with its status and message by REST, GraphQL
and /v3 alike, and nothing stored. Servers here run with small limits, so that the bodies
that pass them stay small."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.graphql import Org, post
from tests.support.hostile import ALIAS_BOMB, ALIAS_BOMB_REFUSAL
from tests.support.live_server import LiveServer

MakeServer = Callable[..., LiveServer]

CREATE_BUILD = """
mutation CreateBuild($input: BuildCreateInput!) {
  buildCreate(input: $input) { build { number } }
}
"""


def _builds(org: Org) -> list[Any]:
    builds: list[Any] = org.get("pipelines/p/builds")
    return builds


def _create_build(org: Org, **fields: Any) -> Any:
    return org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines/p/builds",
        json={"commit": "HEAD", "branch": "main", **fields},
    )


def _refusal(field: str, code: str) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": [{"field": field, "code": code}]}


def _steps(count: int) -> str:
    return "steps:\n" + "".join(f"  - command: echo {n}\n" for n in range(count))


# Request bodies.


def test_a_body_over_the_limit_is_refused_from_its_content_length(
    make_server: MakeServer,
) -> None:
    org = Org.create(make_server(max_request_bytes=4096))
    body = json.dumps({"commit": "HEAD", "branch": "main", "message": "x" * 5000}).encode()

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines/p/builds",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json() == {
        "message": f"Request body too large: it is {len(body)} bytes, over the limit of 4096 "
        "(KITELINE_MAX_REQUEST_BYTES)"
    }
    assert _builds(org) == []


def test_a_chunked_body_is_refused_once_it_passes_the_limit(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_request_bytes=4096))

    def chunks() -> Iterator[bytes]:
        yield b'{"commit": "HEAD", "branch": "main", "message": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines/p/builds",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json() == {
        "message": "Request body too large: it is over the limit of 4096 "
        "(KITELINE_MAX_REQUEST_BYTES)"
    }
    assert _builds(org) == []


def test_a_body_under_the_limit_is_served(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_request_bytes=4096))

    assert _create_build(org, message="x" * 3000).status_code == 201


def test_the_limit_applies_to_graphql_and_v3_too(make_server: MakeServer) -> None:
    server = make_server(max_request_bytes=4096)
    org = Org.create(server)

    graphql = post(org.rest, "{ viewer { user { name } } }" + " " * 5000)
    v3 = org.agent().call("POST", "/heartbeat", json={"padding": "x" * 5000})

    assert (graphql.status_code, v3.status_code) == (413, 413)
    assert graphql.json()["message"].startswith("Request body too large: it is ")


# Fields, through REST and GraphQL.


def test_a_build_message_over_the_limit_is_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_build_message_bytes=100))

    response = _create_build(org, message="é" * 51)  # 102 bytes in UTF-8

    assert response.status_code == 422
    assert response.json() == _refusal("message", "is too long (maximum is 100 bytes)")
    assert _create_build(org, message="é" * 50).status_code == 201
    assert [build["number"] for build in _builds(org)] == [1]


def test_graphql_build_create_is_held_to_the_same_limit(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_build_message_bytes=100))
    pipeline_id = org.get("pipelines/p")["graphql_id"]

    response = post(
        org.rest,
        CREATE_BUILD,
        {"input": {"pipelineID": pipeline_id, "message": "m" * 101}},
    )

    assert response.json()["errors"][0]["message"] == (
        "Validation Failed: message is too long (maximum is 100 bytes)"
    )
    assert _builds(org) == []


def test_too_many_env_variables_are_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_env_vars=3))

    response = _create_build(org, env={f"V{n}": "1" for n in range(4)})

    assert response.status_code == 422
    assert response.json() == _refusal("env", "has too many variables (4; maximum is 3)")
    assert _builds(org) == []


def test_env_names_and_values_over_the_limit_are_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_env_key_bytes=10, max_env_value_bytes=20))

    long_name = _create_build(org, env={"N" * 11: "1"})
    long_value = _create_build(org, env={"NAME": "v" * 21})

    assert long_name.json() == _refusal("env key", "is too long (maximum is 10 bytes)")
    assert long_value.json() == _refusal("env.NAME", "is too long (maximum is 20 bytes)")
    assert _builds(org) == []


def test_a_pipelines_env_is_held_to_the_same_limits(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_env_vars=2))

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines",
        json={"name": "q", "configuration": _steps(1), "env": {"A": "1", "B": "2", "C": "3"}},
    )

    assert response.status_code == 422
    assert response.json() == _refusal("env", "has too many variables (3; maximum is 2)")
    assert [pipeline["slug"] for pipeline in org.get("pipelines")] == ["p"]


def test_meta_data_over_the_limit_is_refused_at_build_create_and_from_jobs(
    make_server: MakeServer,
) -> None:
    org = Org.create(make_server(max_meta_data_value_bytes=50))

    refused = _create_build(org, meta_data={"release": "v" * 51})
    assert refused.status_code == 422
    assert refused.json() == _refusal("value of release", "is too long (maximum is 50 bytes)")
    assert _builds(org) == []

    org.build()
    agent = org.agent()
    job = agent.take_job()
    too_long = agent.call(
        "POST",
        f"/jobs/{job['id']}/data/set",
        token=job["token"],
        json={"key": "release", "value": "v" * 51},
    )
    assert too_long.status_code == 422
    assert too_long.json() == _refusal("value of release", "is too long (maximum is 50 bytes)")
    exists = agent.call(
        "POST", f"/jobs/{job['id']}/data/exists", token=job["token"], json={"key": "release"}
    )
    assert exists.json() == {"exists": False}


# Pipelines: their text, aliases, steps and jobs.


def test_a_yaml_alias_bomb_is_refused_at_once_by_rest(server: LiveServer) -> None:
    org = Org.create(server)

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines",
        json={"name": "bomb", "configuration": ALIAS_BOMB},
    )

    assert response.status_code == 422
    assert response.json() == _refusal("configuration", ALIAS_BOMB_REFUSAL)
    assert [pipeline["slug"] for pipeline in org.get("pipelines")] == ["p"]


def test_a_yaml_alias_bomb_is_refused_by_graphql_alike(server: LiveServer) -> None:
    org = Org.create(server)

    response = post(
        org.rest,
        """
        mutation Create($org: ID!, $yaml: String!) {
          pipelineCreate(input: {organizationId: $org, name: "bomb", repository: {url: "r"},
                                 steps: {yaml: $yaml}}) {
            pipeline { slug }
          }
        }
        """,
        {"org": org.get("")["graphql_id"], "yaml": ALIAS_BOMB},
    )

    assert response.json()["errors"][0]["message"] == (
        f"Validation Failed: configuration {ALIAS_BOMB_REFUSAL}"
    )
    assert [pipeline["slug"] for pipeline in org.get("pipelines")] == ["p"]


def test_a_pipeline_upload_over_the_body_limit_is_refused_before_it_is_parsed(
    make_server: MakeServer,
) -> None:
    org = Org.create(make_server(max_request_bytes=4096))
    org.build()
    agent = org.agent()
    job = agent.take_job()
    steps = [{"command": f"echo {n}"} for n in range(200)]

    response = agent.upload_pipeline(job, {"steps": steps})

    assert response.status_code == 413
    assert response.json()["message"].endswith(
        "over the limit of 4096 (KITELINE_MAX_REQUEST_BYTES)"
    )
    assert len(org.get("pipelines/p/builds/1")["jobs"]) == 4


def test_a_pipeline_text_over_the_limit_is_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_pipeline_bytes=2048))
    configuration = _steps(100)

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines",
        json={"name": "big", "configuration": configuration},
    )

    assert response.status_code == 422
    assert response.json() == _refusal(
        "configuration",
        f"Pipeline is {len(configuration)} bytes, larger than the limit of 2048 bytes",
    )


def test_a_pipeline_with_more_steps_than_the_limit_is_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_steps_per_upload=5))
    grouped = _steps(4) + "  - group: g\n    steps:\n      - command: a\n"  # 4 + 1 + 1

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines",
        json={"name": "big", "configuration": grouped},
    )

    assert response.status_code == 422
    assert response.json() == _refusal(
        "configuration", "Pipeline has 6 steps, more than the limit of 5 per upload"
    )
    assert [pipeline["slug"] for pipeline in org.get("pipelines")] == ["p"]


@pytest.mark.parametrize(
    ("limit", "steps", "reason"),
    [
        pytest.param(
            {"max_steps_per_upload": 5},
            [{"command": f"echo {n}"} for n in range(6)],
            "Pipeline has 6 steps, more than the limit of 5 per upload",
            id="steps-per-upload",
        ),
        pytest.param(
            {"max_jobs_per_build": 6},  # the build has 4 jobs
            [{"command": "a"}, {"command": "b"}, {"command": "c"}],
            "The build would have 7 jobs, more than the limit of 6 per build",
            id="jobs-per-build",
        ),
    ],
)
def test_an_upload_over_a_limit_is_refused(
    make_server: MakeServer, limit: dict[str, int], steps: list[dict[str, str]], reason: str
) -> None:
    org = Org.create(make_server(**limit))
    org.build()
    agent = org.agent()
    job = agent.take_job()

    response = agent.upload_pipeline(job, {"steps": steps})

    assert response.status_code == 422
    assert response.json() == {"message": f"The uploaded pipeline is too large: {reason}"}
    assert len(org.get("pipelines/p/builds/1")["jobs"]) == 4


def test_a_build_with_more_jobs_than_the_limit_is_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(max_jobs_per_build=10))
    org.pipeline("wide", "steps:\n  - command: echo\n    parallelism: 11\n")

    response = org.rest.post(
        f"/v2/organizations/{org.slug}/pipelines/wide/builds",
        json={"commit": "HEAD", "branch": "main"},
    )

    assert response.status_code == 422
    assert response.json() == _refusal(
        "configuration", "The build would have 11 jobs, more than the limit of 10 per build"
    )
    assert org.get("pipelines/wide/builds") == []


# GraphQL documents and answers.

INTROSPECTION_ALIAS = "a{n}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"


def _introspections(count: int) -> str:
    return "{ " + " ".join(INTROSPECTION_ALIAS.format(n=n) for n in range(count)) + " }"


def test_a_query_with_more_aliases_than_the_limit_is_refused_before_it_runs(
    server: LiveServer,
) -> None:
    org = Org.create(server)

    response = post(org.rest, _introspections(1000))

    assert response.status_code == 200
    assert response.json() == {
        "errors": [{"message": "Query has 1000 aliases, which exceeds max aliases of 500"}]
    }


def test_fields_are_counted_through_fragments(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_max_fields=15))
    query = """
    query { viewer { ...a ...a ...a } }
    fragment a on Viewer { user { ...b ...b } }
    fragment b on User { name email }
    """

    response = post(org.rest, query)

    assert response.json() == {
        "errors": [{"message": "Query has 16 fields, which exceeds max fields of 15"}]
    }


def test_an_answer_over_the_limit_is_refused(make_server: MakeServer) -> None:
    org = Org.create(make_server(graphql_max_answer_bytes=4096))

    introspection = post(org.rest, _introspections(1))
    small = post(org.rest, "{ viewer { user { name } } }")

    assert introspection.json() == {
        "errors": [
            {
                "message": "The answer would be larger, which exceeds max answer size of 4096 "
                "bytes: ask for fewer fields or smaller pages"
            }
        ]
    }
    assert small.json() == {"data": {"viewer": {"user": {"name": "Test User"}}}}


def test_an_allowed_introspection_is_answered_whole(server: LiveServer) -> None:
    org = Org.create(server)

    response = post(org.rest, _introspections(3))

    data = response.json()["data"]
    assert sorted(data) == ["a0", "a1", "a2"]
    assert data["a0"] == data["a2"]
    assert "Build" in [graphql_type["name"] for graphql_type in data["a0"]["types"]]
