"""GET /v2/openapi.json describes the REST API: a valid OpenAPI 3 document whose shapes the real
responses match exactly, and which schemathesis cannot catch out (no 5xx, no body off-schema)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis.pytest.lazy import get_all_tests

from kiteline.server.app import create_app
from tests.support.agent_protocol import ScriptedAgent, upload_to_the_server
from tests.support.databases import backends, fresh_database
from tests.support.live_server import LiveServer, start_live_server

ORG = "/v2/organizations/acme"
PIPELINE = f"{ORG}/pipelines/app"
BUILD = f"{PIPELINE}/builds/1"
CONFIGURATION = """
steps:
  - key: make
    label: Make
    command: make
    artifact_paths: "dist/*"
  - trigger: downstream
    label: Downstream
    async: true
  - wait
  - block: Release?
    key: release
    fields:
      - text: Notes
        key: notes
"""
DOWNSTREAM = "steps:\n  - command: echo downstream\n    agents:\n      queue: elsewhere\n"
ARTIFACT = b"artifact bytes\n"


@dataclass
class World:
    """A server holding one of everything: a build with a job of every type run by an agent."""

    server: LiveServer
    client: httpx.Client
    token: str
    jobs: dict[str, str]  # job type -> id, all in build 1 of `app`
    agent_id: str
    artifact_id: str
    annotation_id: str
    agent_while_running: dict[str, Any]  # GET agent while it held the script job

    @property
    def make_job(self) -> str:
        return self.jobs["script"]


def _populate(server: LiveServer) -> World:
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    for name, configuration in (("App", CONFIGURATION), ("Downstream", DOWNSTREAM)):
        created = client.post(
            f"{ORG}/pipelines", json={"name": name, "configuration": configuration}
        )
        assert created.status_code == 201, created.text
    built = client.post(f"{PIPELINE}/builds", json={"commit": "HEAD", "branch": "main"})
    assert built.status_code == 201, built.text
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    running = client.get(f"{ORG}/agents/{agent.id}").json()
    assert agent.log(job, 0, 0, b"\x1b[32mmaking\x1b[0m\n").status_code == 201
    artifact_id = _upload_artifact(agent, job)
    assert agent.finish(job, "0").status_code == 200
    annotation = client.post(
        f"{BUILD}/annotations", json={"body": "**Built**", "style": "success", "context": "ci"}
    )
    assert annotation.status_code == 201, annotation.text
    meta_data = client.post(f"{BUILD}/meta-data", json={"key": "release", "value": "1.0"})
    assert meta_data.status_code == 201, meta_data.text
    jobs = {job["type"]: job["id"] for job in client.get(BUILD).json()["jobs"]}
    assert set(jobs) == {"script", "trigger", "waiter", "manual"}
    return World(
        server,
        client,
        identity.api_token,
        jobs,
        agent.id,
        artifact_id,
        annotation.json()["id"],
        running,
    )


def _upload_artifact(agent: ScriptedAgent, job: dict[str, Any]) -> str:
    """As buildkite-agent does: declare the artifact, upload it to its signed URL, finish it."""
    artifact_id, instructions = agent.declare_artifact(job, ARTIFACT, batch="batch-1")
    upload = upload_to_the_server(instructions, ARTIFACT, "a")
    assert upload.status_code == 201, upload.text
    done = agent.finish_artifact(job, artifact_id)
    assert done.status_code == 200, done.text
    return str(artifact_id)


@pytest.fixture(scope="module", params=backends())
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Shared by the read-only tests of this module; the schemathesis run makes its own."""
    tmp_path = tmp_path_factory.mktemp("openapi")
    with fresh_database(request.param, tmp_path) as url:
        server = start_live_server(url, tmp_path / "data")
        try:
            yield _populate(server)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def document(world: World) -> dict[str, Any]:
    response = world.client.get("/v2/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


# --- The document ----------------------------------------------------------------------------


def test_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    validate_openapi(document)
    assert document["openapi"].startswith("3.")


def test_every_v2_route_is_in_the_document_with_its_responses(document: dict[str, Any]) -> None:
    app = create_app()
    routes = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema and route.path.startswith("/v2")
        for method in route.methods
    }
    described = {
        (method, path) for path, methods in document["paths"].items() for method in methods
    }
    assert routes - described == set()
    for method, path in routes:
        responses = document["paths"][path][method]["responses"]
        assert "401" in responses or path == "/v2/meta", (method, path)
        (success,) = [status for status in responses if status.startswith(("2", "3"))]
        # a body described by a component, not FastAPI's `dict[str, Any]` placeholder
        content = responses[success].get("content", {})
        assert (success == "204") == (content == {}), (method, path)
        assert all("$ref" in str(media["schema"]) for media in content.values()), (method, path)


def test_authenticated_routes_declare_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API access token",
    }
    user = document["paths"]["/v2/user"]["get"]
    assert {"bearer": []} in user["security"]
    assert document["paths"]["/v2/meta"]["get"]["security"] == []


def test_lists_declare_link_and_rate_limit_headers(document: dict[str, Any]) -> None:
    listing = document["paths"]["/v2/organizations/{org}/pipelines"]["get"]
    headers = listing["responses"]["200"]["headers"]
    assert {"Link", "RateLimit-Remaining", "RateLimit-User-Remaining"} <= set(headers)


# --- Real responses against the document ------------------------------------------------------


def _follow(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _template(document: dict[str, Any], method: str, path: str) -> str:
    """The document's path template (`/v2/organizations/{org}`) that a real path falls under."""
    matches = [
        template
        for template, methods in document["paths"].items()
        if method in methods
        and re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), path)
    ]
    assert len(matches) == 1, (method, path, matches)
    return matches[0]


def _closed(document: dict[str, Any]) -> dict[str, Any]:
    """The components with every listed object closed: a key the document omits is an error."""
    components = copy.deepcopy(document["components"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(components["schemas"])
    return components


def _validate(document: dict[str, Any], schema: dict[str, Any], body: Any) -> None:
    """`body` matches `schema` as the document states it, and names no key it leaves out."""
    for components in (document["components"], _closed(document)):
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": components},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        problems = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(body)
        ]
        assert problems == [], problems


def assert_conforms(document: dict[str, Any], response: httpx.Response) -> None:
    """The status, headers and body are the ones the document gives this route."""
    method = response.request.method.lower()
    template = _template(document, method, response.request.url.path)
    declared = document["paths"][template][method]["responses"]
    assert str(response.status_code) in declared, (template, response.status_code, response.text)
    spec = _follow(document, declared[str(response.status_code)])
    sent = {name.lower() for name in response.headers if re.match(r"(?i)link$|ratelimit-", name)}
    assert sent <= {name.lower() for name in spec.get("headers", {})}
    if "content" not in spec:
        assert response.content == b""
        return
    media = response.headers["content-type"].split(";")[0]
    schema = spec["content"][media]["schema"]
    _validate(document, schema, response.json() if media == "application/json" else response.text)


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


JOB = f"{BUILD}/jobs/{{job}}"
ORG_JOB = f"{ORG}/jobs/{{job}}"
READS = [
    "/v2/organizations",
    ORG,
    f"{ORG}/rate_limit",
    "/v2/user",
    "/v2/access-token",
    "/v2/meta",
    f"{ORG}/pipelines",
    f"{ORG}/pipelines?per_page=1&page=2",
    PIPELINE,
    "/v2/builds",
    f"{ORG}/builds?state=blocked&branch=main",
    f"{PIPELINE}/builds",
    BUILD,
    f"{BUILD}?include_retried_jobs=true&exclude_pipeline=true&exclude_jobs=true",
    f"{ORG}/pipelines/downstream/builds/1",
    f"{ORG}/agents",
    f"{ORG}/agents/{{agent}}",
    f"{BUILD}/artifacts",
    f"{BUILD}/jobs/{{script}}/artifacts?state=finished",
    f"{BUILD}/jobs/{{script}}/artifacts/{{artifact}}",
    f"{BUILD}/jobs/{{script}}/artifacts/{{artifact}}/download",
    f"{BUILD}/annotations?scope=all",
    f"{BUILD}/annotations?omit_body=true",
    f"{BUILD}/meta-data",
    f"{BUILD}/meta-data/release",
    *[
        path.replace("{job}", "{script}") + suffix
        for path in (JOB, ORG_JOB)
        for suffix in ("/log", "/log.txt", "/log.html", "/log.json", "/env", "/env.txt")
    ],
]


def _ids(world: World) -> dict[str, str]:
    return {
        **world.jobs,
        "agent": world.agent_id,
        "artifact": world.artifact_id,
        "annotation": world.annotation_id,
    }


@pytest.mark.parametrize("path", READS, ids=READS)
def test_read_matches_the_document(world: World, document: dict[str, Any], path: str) -> None:
    response = world.client.get(path.format(**_ids(world)))
    assert response.status_code == (302 if path.endswith("/download") else 200), response.text
    assert_conforms(document, response)


@pytest.mark.parametrize("job_type", ["script", "waiter", "manual", "trigger"])
@pytest.mark.parametrize("route", [JOB, ORG_JOB])
def test_each_job_type_matches_its_variant(
    world: World, document: dict[str, Any], route: str, job_type: str
) -> None:
    response = world.client.get(route.format(job=world.jobs[job_type]))
    assert response.status_code == 200, response.text
    assert_conforms(document, response)
    _validate(document, _schema(f"{job_type.title()}Job"), response.json())


def test_agent_holding_a_job_matches_the_document(world: World, document: dict[str, Any]) -> None:
    assert world.agent_while_running["job"]["id"] == world.make_job
    _validate(document, _schema("Agent"), world.agent_while_running)


def test_paged_list_sends_a_declared_link_header(world: World, document: dict[str, Any]) -> None:
    response = world.client.get(f"{ORG}/pipelines", params={"per_page": 1})
    assert 'rel="next"' in response.headers["link"]
    assert_conforms(document, response)


def test_created_and_deleted_annotation_match_the_document(
    world: World, document: dict[str, Any]
) -> None:
    created = world.client.post(f"{BUILD}/annotations", json={"body": "x", "context": "temp"})
    assert created.status_code == 201
    assert_conforms(document, created)
    deleted = world.client.delete(f"{BUILD}/annotations/temp")
    assert deleted.status_code == 204
    assert_conforms(document, deleted)


ERRORS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", f"{ORG}/pipelines/nowhere", {}, 404),
    ("GET", f"{JOB.format(job='not-a-job')}", {}, 404),
    ("POST", f"{ORG}/pipelines", {"json": {"name": "No steps"}}, 422),
    ("POST", f"{ORG}/pipelines", {"json": {"configuration": "steps: []"}}, 422),
    ("POST", f"{PIPELINE}/unarchive", {}, 422),
    (
        "POST",
        f"{ORG}/pipelines",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        400,
    ),
    ("GET", f"{PIPELINE}/builds?created_from=yesterday", {}, 400),
    ("GET", f"{BUILD}/annotations?scope=everything", {}, 400),
]


@pytest.mark.parametrize(("method", "path", "request_args", "status"), ERRORS)
def test_error_matches_the_document(
    world: World,
    document: dict[str, Any],
    method: str,
    path: str,
    request_args: dict[str, Any],
    status: int,
) -> None:
    response = world.client.request(method, path, **request_args)
    assert response.status_code == status, response.text
    assert_conforms(document, response)


def test_missing_token_matches_the_document(world: World, document: dict[str, Any]) -> None:
    response = httpx.get(f"{world.server.url}/v2/user")
    assert response.status_code == 401
    assert_conforms(document, response)


def test_missing_scope_matches_the_document(world: World, document: dict[str, Any]) -> None:
    reader = world.server.identity("acme", scopes=["read_builds"])
    response = world.server.client(reader.api_token).get("/v2/user")
    assert response.status_code == 403
    assert_conforms(document, response)


def test_rate_limited_answer_matches_the_document(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(rate_limit_user_per_minute=1)
    client = server.client(server.identity("acme").api_token)
    document = client.get("/v2/openapi.json").json()
    assert client.get("/v2/user").status_code == 200
    response = client.get("/v2/user")
    assert response.status_code == 429
    assert_conforms(document, response)


# --- schemathesis ------------------------------------------------------------------------------

#: DELETE /v2/access-token would revoke the run's own token: every later request would be a 401.
#: /v3 is the agent protocol (agent tokens; not described in detail) and has its own tests.
NOT_FUZZED = {"DELETE /v2/access-token"}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


def _fuzz_config(world: World) -> schemathesis.Config:
    real_objects = {
        "org": "acme",
        "slug": "app",
        "pipeline": "app",
        "number": "1",
        "job_id": world.make_job,
        "agent_id": world.agent_id,
        "artifact_id": world.artifact_id,
        "id_or_context": world.annotation_id,
        "key": "release",
    }
    return schemathesis.Config.from_dict(
        {
            "base-url": world.server.url,
            "headers": {"Authorization": f"Bearer {world.token}"},
            "parameters": {f"path.{name}": value for name, value in real_objects.items()},
            "request-timeout": 30,
            "generation": {
                "max-examples": 3,
                "deterministic": True,
                "with-security-parameters": False,  # the header above authenticates every call
            },
            # examples (none in the document), coverage (boundary values, nulls, each enum
            # value: finite) and fuzzing (max-examples); no stateful sequences.
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
        }
    )


#: The /v2 operations (and /healthz) in groups of about equal size, each fuzzed by a test of its
#: own (its own server): xdist spreads them, and none nears the timeout on a busy machine.
FUZZ_GROUPS = {
    "jobs": ["jobs"],
    "builds": ["builds", "artifacts", "annotations", "meta-data"],
    "pipelines": ["pipelines", "notification services", "sources"],
    "organizations-agents": ["organizations", "agents", "access-token", "user", "meta", "health"],
}


def _fuzz(world: World, document: dict[str, Any], tags: list[str]) -> list[str]:
    """The /v2 operations (and /healthz) of these tags on real objects; the failures, one per
    operation."""
    schema = (
        schemathesis.openapi.from_dict(document, config=_fuzz_config(world))
        .include(path_regex=r"^/(v2/|healthz$)")
        .include(tag=tags)
        .exclude(
            func=lambda ctx: f"{ctx.operation.method.upper()} {ctx.operation.path}" in NOT_FUZZED
        )
    )

    return _run(schema)


def _run(schema: Any) -> list[str]:
    """Each operation's tests as its phases make them; the failures, one per operation."""

    def call(case: Any) -> None:
        case.call_and_validate(allow_redirects=False)  # the 302 download is the answer itself

    # What `schemathesis.pytest.from_fixture` runs per operation (its own wrapper does not work
    # with pytest 9); it builds each operation's test from the config's phases.
    tests = [
        result.ok()
        for result in get_all_tests(
            schema=schema,
            test_func=call,
            settings=settings(
                deadline=None, database=None, suppress_health_check=list(HealthCheck)
            ),
            given_kwargs=None,
        )
    ]
    # Deletions last and deepest first, so that they take nothing away from the others.
    tests.sort(key=lambda item: (item[0].method.upper() == "DELETE", -len(item[0].path)))
    failures = []
    for operation, test in tests:
        try:
            test()
        except (Exception, BaseExceptionGroup) as error:  # one run reports every operation
            failures.append(f"{operation.label}: {error}")
    return failures


def test_every_v2_operation_is_in_a_fuzz_group(document: dict[str, Any]) -> None:
    grouped = {tag for tags in FUZZ_GROUPS.values() for tag in tags}
    fuzzed = [
        (method, path, operation.get("tags"))
        for path, methods in document["paths"].items()
        if path.startswith("/v2/") or path == "/healthz"
        for method, operation in methods.items()
        if f"{method.upper()} {path}" not in NOT_FUZZED
    ]
    assert [item for item in fuzzed if not set(item[2] or []) & grouped] == []


@pytest.mark.timeout(120)  # a hang guard; a group takes 5-10 s on a quiet machine
@pytest.mark.parametrize("group", list(FUZZ_GROUPS))
def test_schemathesis_finds_no_server_error_and_no_off_schema_answer(
    make_server: Callable[..., LiveServer], group: str
) -> None:
    # Rate limits off: a couple of thousand requests would otherwise be mostly 429s.
    world = _populate(make_server(rate_limit_org_per_minute=0, rate_limit_user_per_minute=0))
    document = world.client.get("/v2/openapi.json").json()
    failures = _fuzz(world, document, FUZZ_GROUPS[group])
    assert failures == [], "\n\n".join(failures)


# --- schemathesis on /v3 --------------------------------------------------------------------

AGENT_CALLS = r"^/v3/(ping|connect|heartbeat|disconnect|register|jobs/\{job_id\}/accept)$"
#: Routes fuzzed with the agent's access token (AGENT_CALLS), without a token (the signed
#: artifact URLs), and with the job's token (every other route).
SIGNED_CALLS = r"^/v3/artifacts/"


def _agent_config(server: LiveServer, token: str | None, ids: dict[str, str]) -> Any:
    return schemathesis.Config.from_dict(
        {
            "base-url": server.url,
            "headers": {"Authorization": f"Token {token}"} if token else {},
            "parameters": {f"path.{name}": value for name, value in ids.items()},
            "request-timeout": 30,
            "generation": {
                "max-examples": 3,
                "deterministic": True,
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False}
            | {name: {"enabled": True} for name in (*CHECKS, "unsupported_method")},
        }
    )


@pytest.mark.timeout(120)  # a hang guard
def test_schemathesis_finds_the_agent_api_answering_only_what_it_documents(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(rate_limit_org_per_minute=0, rate_limit_user_per_minute=0)
    identity = server.identity("acme")
    client = server.client(identity.api_token)
    client.post(f"{ORG}/pipelines", json={"name": "App", "configuration": CONFIGURATION})
    client.post(f"{PIPELINE}/builds", json={"commit": "HEAD", "branch": "main"})
    agent = ScriptedAgent.register(server.url, identity.agent_token)
    job = agent.take_job()
    artifact_id = _upload_artifact(agent, job)
    ids = {
        "job_id": job["id"],
        "build_id": job["env"]["BUILDKITE_BUILD_ID"],
        "artifact_id": artifact_id,
        "context": "ci",
        "step": "make",
        "upload_id": "00000000-0000-4000-8000-000000000000",
    }
    document = client.get("/v2/openapi.json").json()
    failures = []
    for token, include in (
        (agent.access_token, {"path_regex": AGENT_CALLS}),
        (None, {"path_regex": SIGNED_CALLS}),
        (job["token"], {"path_regex": r"^/v3/(jobs|builds|steps)/"}),
    ):
        schema = schemathesis.openapi.from_dict(
            document, config=_agent_config(server, token, ids)
        ).include(**include)
        if token == job["token"]:
            schema = schema.exclude(path_regex=AGENT_CALLS)
        failures += _run(schema)
    assert failures == [], "\n\n".join(failures)
