"""GraphQL at /v1 through the `gql` client, the schema fetched by introspection: the seed's
queries and mutations, and the answers agreeing with REST for the same objects."""

from __future__ import annotations

import base64
import json

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.support.graphql import Org, execute, post
from tests.support.live_server import LiveServer

# The seed's examples, verbatim.
GET_BUILD = """
query GetBuild($uuid: ID!) {
  build(uuid: $uuid) {
    number
    state
    branch
    commit
    message
    createdAt
    startedAt
    finishedAt
    jobs(first: 50) {
      edges {
        node {
          ... on JobTypeCommand {
            uuid
            label
            state
            exitStatus
            env  # Only available in GraphQL
          }
        }
      }
    }
  }
}
"""

LIST_PIPELINES = """
query ListPipelines($org: ID!) {
  organization(slug: $org) {
    pipelines(first: 20) {
      edges {
        node {
          name
          slug
          builds(first: 5) {
            edges {
              node {
                number
                state
                branch
              }
            }
          }
        }
      }
    }
  }
}
"""

SEARCH_BUILDS = """
query SearchBuilds($org: ID!, $pipeline: ID!) {
  pipeline(slug: $pipeline) {
    builds(
      first: 10
      branch: "main"
      state: [PASSED, FAILED]
    ) {
      edges {
        node {
          number
          state
          createdAt
        }
      }
    }
  }
}
"""

CREATE_BUILD = """
mutation CreateBuild($input: BuildCreateInput!) {
  buildCreate(input: $input) {
    build {
      uuid
      number
      url
    }
  }
}
"""

CANCEL_BUILD = """
mutation CancelBuild($id: ID!) {
  buildCancel(input: { id: $id }) {
    build {
      state
    }
  }
}
"""


def global_id(type_name: str, uuid: str) -> str:
    return base64.b64encode(f"{type_name}---{uuid}".encode()).decode()


def test_introspection_serves_buildkites_names(server: LiveServer) -> None:
    org = Org.create(server)
    names = execute(org.gql, "{ __schema { types { name } mutationType { fields { name } } } }")
    types = {t["name"] for t in names["__schema"]["types"]}
    assert {
        "Build",
        "BuildConnection",
        "Job",
        "JobTypeCommand",
        "JobTypeWait",
        "JobTypeBlock",
        "JobTypeTrigger",
        "BuildStates",
        "JobStates",
        "BuildBlockedStates",
        "AnnotationStyle",
        "PageInfo",
        "Node",
    } <= types
    mutations = {f["name"] for f in names["__schema"]["mutationType"]["fields"]}
    assert mutations == {
        "buildCreate",
        "buildCancel",
        "buildRebuild",
        "jobTypeCommandRetry",
        "jobTypeCommandCancel",
        "jobTypeBlockUnblock",
        "pipelineCreate",
        "pipelineUpdate",
        "pipelineDelete",
        "pipelineScheduleCreate",
        "pipelineScheduleUpdate",
        "pipelineScheduleDelete",
        "agentStop",
        "buildAnnotate",
    }


@pytest.mark.both_graphql_executions
def test_build_by_uuid_with_command_jobs_and_their_env_agrees_with_rest(
    server: LiveServer,
) -> None:
    org = Org.create(server)
    created = org.build(message="Ship it", env={"FROM_BUILD": "yes"})
    org.run_first_job("0")

    found = execute(org.gql, GET_BUILD, uuid=created["id"])["build"]

    rest = org.get("pipelines/p/builds/1")
    assert found["number"] == rest["number"] == 1
    assert found["state"] == rest["state"].upper() == "PASSED"  # blocked on the block step
    assert (found["branch"], found["commit"], found["message"]) == ("main", "HEAD", "Ship it")
    assert found["createdAt"] == rest["created_at"]
    assert found["startedAt"] == rest["started_at"]
    assert found["finishedAt"] == rest["finished_at"]
    commands = [edge["node"] for edge in found["jobs"]["edges"] if edge["node"]]
    rest_commands = [job for job in rest["jobs"] if job["type"] == "script"]
    assert [job["uuid"] for job in commands] == [job["id"] for job in rest_commands]
    compile_job, deploy = commands
    assert (compile_job["label"], compile_job["state"], compile_job["exitStatus"]) == (
        "Compile",
        "FINISHED",  # REST says "passed": GraphQL keeps the job state, `passed` says how
        "0",
    )
    assert rest_commands[0]["state"] == "passed"
    assert (deploy["state"], deploy["exitStatus"]) == ("WAITING", None)
    rest_env = org.get(f"pipelines/p/builds/1/jobs/{compile_job['uuid']}/env")["env"]
    assert compile_job["env"] == [f"{key}={value}" for key, value in sorted(rest_env.items())]
    assert "FROM_BUILD=yes" in compile_job["env"]
    assert "STEP_VAR=from-step" in compile_job["env"]


@pytest.mark.both_graphql_executions
def test_organization_pipelines_with_their_five_latest_builds(server: LiveServer) -> None:
    org = Org.create(server)
    org.pipeline("q")
    for _ in range(6):
        org.build("p")
    org.build("q", branch="feature")

    found = execute(org.gql, LIST_PIPELINES, org="acme")["organization"]["pipelines"]

    by_slug = {edge["node"]["slug"]: edge["node"] for edge in found["edges"]}
    assert set(by_slug) == {p["slug"] for p in org.get("pipelines")}
    for slug, pipeline in by_slug.items():
        builds = [edge["node"] for edge in pipeline["builds"]["edges"]]
        rest = org.get(f"pipelines/{slug}/builds", per_page=5)
        assert builds == [
            {"number": b["number"], "state": b["state"].upper(), "branch": b["branch"]}
            for b in rest
        ]
    assert [b["number"] for b in _nodes(by_slug["p"]["builds"])] == [6, 5, 4, 3, 2]
    assert by_slug["q"]["name"] == "q"


def _nodes(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


def _finished_builds(org: Org) -> None:
    """Builds 1-4 of `p`: passed on main, failed on main, passed on a branch, running."""
    for branch, exit_status in (("main", "0"), ("main", "1"), ("feature", "0")):
        org.build(branch=branch)
        org.run_first_job(exit_status)
    org.build()


@pytest.mark.both_graphql_executions
def test_pipeline_builds_filtered_by_branch_and_state_agree_with_rest(
    server: LiveServer,
) -> None:
    org = Org.create(server)
    _finished_builds(org)
    query = SEARCH_BUILDS.replace("$org: ID!, ", "")  # gql refuses the seed's unused $org

    found = _nodes(execute(org.gql, query, pipeline="acme/p")["pipeline"]["builds"])

    rest = org.get("pipelines/p/builds", branch="main", **{"state[]": ["passed", "failed"]})
    assert [(b["number"], b["state"]) for b in found] == [
        (b["number"], b["state"].upper()) for b in rest
    ]
    assert [(b["number"], b["state"]) for b in found] == [(2, "FAILED"), (1, "PASSED")]
    assert [b["createdAt"] for b in found] == [b["created_at"] for b in rest]


@pytest.mark.both_graphql_executions
def test_seed_search_query_runs_verbatim_with_its_unused_variable(server: LiveServer) -> None:
    org = Org.create(server)
    _finished_builds(org)
    response = post(org.rest, SEARCH_BUILDS, {"org": "acme", "pipeline": "acme/p"})
    assert response.status_code == 200
    numbers = [b["number"] for b in _nodes(response.json()["data"]["pipeline"]["builds"])]
    assert numbers == [2, 1]


@pytest.mark.both_graphql_executions
def test_builds_page_forwards_and_backwards_with_cursors(server: LiveServer) -> None:
    org = Org.create(server)
    for _ in range(5):
        org.build()
    query = """
    query Page($first: Int, $after: String, $last: Int, $before: String) {
      pipeline(slug: "acme/p") {
        builds(first: $first, after: $after, last: $last, before: $before) {
          count
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges { cursor node { number } }
        }
      }
    }
    """

    def page(**arguments: object) -> dict:
        return execute(org.gql, query, **arguments)["pipeline"]["builds"]

    first = page(first=2)
    assert [e["node"]["number"] for e in first["edges"]] == [5, 4]
    assert first["count"] == 5
    assert first["pageInfo"]["hasNextPage"] is True
    second = page(first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["number"] for e in second["edges"]] == [3, 2]
    third = page(first=2, after=second["pageInfo"]["endCursor"])
    assert [e["node"]["number"] for e in third["edges"]] == [1]
    assert third["pageInfo"]["hasNextPage"] is False
    last = page(last=2)
    assert [e["node"]["number"] for e in last["edges"]] == [2, 1]
    assert last["pageInfo"]["hasPreviousPage"] is True
    before = page(last=2, before=last["pageInfo"]["startCursor"])
    assert [e["node"]["number"] for e in before["edges"]] == [4, 3]
    rest = [b["number"] for b in org.get("pipelines/p/builds")]
    assert rest == [5, 4, 3, 2, 1]


@pytest.mark.both_graphql_executions
def test_jobs_pages_of_several_builds_with_cursors(server: LiveServer) -> None:
    org = Org.create(server)
    steps = "".join(f"  - label: s{n}\n    command: echo {n}\n" for n in range(1, 6))
    org.pipeline("five", "steps:\n" + steps)
    for _ in range(2):
        org.build("five")
    query = """
    query Jobs($first: Int, $after: String, $last: Int, $before: String) {
      pipeline(slug: "acme/five") {
        builds(first: 2) {
          edges { node {
            number
            jobs(first: $first, after: $after, last: $last, before: $before) {
              count
              pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
              edges { node { ... on JobTypeCommand { label } } }
            }
          } }
        }
      }
    }
    """

    def pages(**arguments: object) -> list[dict]:
        builds = execute(org.gql, query, **arguments)["pipeline"]["builds"]["edges"]
        assert [edge["node"]["number"] for edge in builds] == [2, 1]
        return [edge["node"]["jobs"] for edge in builds]

    def labels(connection: dict) -> list[str]:
        return [edge["node"]["label"] for edge in connection["edges"]]

    first = pages(first=2)
    assert [labels(jobs) for jobs in first] == [["s1", "s2"], ["s1", "s2"]]
    assert [(jobs["count"], jobs["pageInfo"]["hasNextPage"]) for jobs in first] == [(5, True)] * 2
    (newest, _) = first
    after = pages(first=2, after=newest["pageInfo"]["endCursor"])
    # A cursor is one job's place: it pages its own build; the other build's jobs are not in it.
    assert labels(after[0]) == ["s3", "s4"]
    last = pages(last=2)
    assert [labels(jobs) for jobs in last] == [["s4", "s5"], ["s4", "s5"]]
    assert last[0]["pageInfo"]["hasPreviousPage"] is True
    before = pages(last=2, before=last[0]["pageInfo"]["startCursor"])
    assert labels(before[0]) == ["s2", "s3"]


def test_build_create_with_a_pipeline_id_taken_from_a_query(server: LiveServer) -> None:
    org = Org.create(server)
    pipeline_id = execute(org.gql, '{ pipeline(slug: "acme/p") { id } }')["pipeline"]["id"]
    assert pipeline_id == org.get("pipelines/p")["graphql_id"]

    created = execute(
        org.gql,
        CREATE_BUILD,
        input={
            "pipelineID": pipeline_id,
            "commit": "HEAD",
            "branch": "main",
            "message": "Triggered via API",
        },
    )["buildCreate"]["build"]

    rest = org.get(f"pipelines/p/builds/{created['number']}")
    assert created == {"uuid": rest["id"], "number": 1, "url": rest["web_url"]}
    assert (rest["message"], rest["state"]) == ("Triggered via API", "scheduled")
    assert rest["creator"]["email"] == org.identity.email
    assert [job["state"] for job in rest["jobs"]] == ["scheduled", "waiting", "waiting", "waiting"]


@pytest.mark.both_graphql_executions
def test_build_create_refusals_say_why(server: LiveServer) -> None:
    org = Org.create(server)
    pipeline_id = org.get("pipelines/p")["graphql_id"]
    with pytest.raises(TransportQueryError) as refused:
        execute(org.gql, CREATE_BUILD, input={"pipelineID": "UGlwZWxpbmUtLi4u"})
    assert refused.value.errors is not None
    assert refused.value.errors[0]["message"] == "No pipeline found"
    with pytest.raises(TransportQueryError) as invalid:
        execute(org.gql, CREATE_BUILD, input={"pipelineID": pipeline_id, "env": ["NOEQUALS"]})
    assert invalid.value.errors is not None
    assert invalid.value.errors[0]["message"] == (
        "Validation Failed: env must be KEY=value strings, got 'NOEQUALS'"
    )
    assert org.get("pipelines/p/builds") == []


def test_build_cancel_agrees_with_rest(server: LiveServer) -> None:
    org = Org.create(server)
    build = org.build()

    canceled = execute(org.gql, CANCEL_BUILD, id=build["graphql_id"])

    assert canceled == {"buildCancel": {"build": {"state": "CANCELED"}}}
    rest = org.get("pipelines/p/builds/1")
    assert rest["state"] == "canceled"
    with pytest.raises(TransportQueryError) as again:
        execute(org.gql, CANCEL_BUILD, id=build["graphql_id"])
    assert again.value.errors is not None
    assert again.value.errors[0]["message"] == "Build can't be canceled because it's canceled"


UNBLOCK = """
mutation Unblock($id: ID!, $fields: JSON) {
  jobTypeBlockUnblock(input: { id: $id, fields: $fields, clientMutationId: "u1" }) {
    clientMutationId
    jobTypeBlock { id state isUnblockable unblockedBy { email } build { url state } }
  }
}
"""


def test_block_unblock_with_fields_as_a_json_string(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    org.run_first_job("0")
    block = org.get("pipelines/p/builds/1")["jobs"][2]
    assert (block["type"], block["state"]) == ("manual", "blocked")
    block_id = global_id("JobTypeBlock", block["id"])

    unblocked = execute(org.gql, UNBLOCK, id=block_id, fields=json.dumps({"version": "v1.2"}))[
        "jobTypeBlockUnblock"
    ]

    rest = org.get("pipelines/p/builds/1")
    assert unblocked == {
        "clientMutationId": "u1",
        "jobTypeBlock": {
            "id": block_id,
            "state": "UNBLOCKED",
            "isUnblockable": False,
            "unblockedBy": {"email": org.identity.email},
            "build": {"url": rest["web_url"], "state": rest["state"].upper()},
        },
    }
    assert rest["jobs"][2]["state"] == "unblocked"
    assert rest["meta_data"] == {"version": "v1.2"}
    assert rest["state"] == "running"


def test_unblocking_twice_is_refused_with_buildkites_reason(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    org.run_first_job("0")
    block = org.get("pipelines/p/builds/1")["jobs"][2]
    execute(org.gql, UNBLOCK, id=global_id("Job", block["id"]), fields='{"version": "v1"}')

    with pytest.raises(TransportQueryError) as refused:
        execute(org.gql, UNBLOCK, id=global_id("JobTypeBlock", block["id"]), fields="{}")

    assert refused.value.errors is not None
    message = refused.value.errors[0]["message"]
    assert message == "The job's state must be blocked, but it is unblocked"


@pytest.mark.both_graphql_executions
def test_unblock_without_a_required_field_names_it(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    org.run_first_job("0")
    block = org.get("pipelines/p/builds/1")["jobs"][2]
    with pytest.raises(TransportQueryError) as refused:
        execute(org.gql, UNBLOCK, id=global_id("JobTypeBlock", block["id"]), fields="{}")
    assert refused.value.errors is not None
    assert refused.value.errors[0]["message"] == "Validation Failed: version is required"
    assert org.get("pipelines/p/builds/1")["jobs"][2]["state"] == "blocked"


RETRY = """
mutation Retry($id: ID!) {
  jobTypeCommandRetry(input: { id: $id }) {
    jobTypeCommand { uuid retried state }
    retriedInJobTypeCommand {
      uuid state retriesCount retryType retrySource { ... on JobTypeCommand { uuid } }
    }
  }
}
"""


def test_command_retry_and_cancel_agree_with_rest(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    failed = org.run_first_job("1")

    retried = execute(org.gql, RETRY, id=global_id("JobTypeCommand", failed["id"]))
    payload = retried["jobTypeCommandRetry"]

    new_uuid = payload["retriedInJobTypeCommand"]["uuid"]
    assert payload["jobTypeCommand"] == {"uuid": failed["id"], "retried": True, "state": "FINISHED"}
    assert payload["retriedInJobTypeCommand"] == {
        "uuid": new_uuid,
        "state": "SCHEDULED",
        "retriesCount": 1,
        "retryType": "MANUAL",
        "retrySource": {"uuid": failed["id"]},
    }
    rest_old = org.get(f"pipelines/p/builds/1/jobs/{failed['id']}")
    assert rest_old["retried_in_job_id"] == new_uuid

    cancel = """
    mutation Cancel($id: ID!) {
      jobTypeCommandCancel(input: { id: $id }) { jobTypeCommand { uuid state } }
    }
    """
    canceled = execute(org.gql, cancel, id=global_id("Job", new_uuid))
    assert canceled["jobTypeCommandCancel"]["jobTypeCommand"] == {
        "uuid": new_uuid,
        "state": "CANCELED",
    }
    assert org.get(f"pipelines/p/builds/1/jobs/{new_uuid}")["state"] == "canceled"


def test_retrying_a_wait_step_is_refused(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    wait = org.get("pipelines/p/builds/1")["jobs"][1]
    with pytest.raises(TransportQueryError) as refused:
        execute(org.gql, RETRY, id=global_id("Job", wait["id"]))
    assert refused.value.errors is not None
    message = refused.value.errors[0]["message"]
    assert message == "The job is a JobTypeWait, not a JobTypeCommand"


def test_rebuild_points_back_at_the_original(server: LiveServer) -> None:
    org = Org.create(server)
    build = org.build(message="first")
    rebuilt = execute(
        org.gql,
        """
        mutation Rebuild($id: ID!) {
          buildRebuild(input: { id: $id }) {
            build { number }
            rebuild { number message rebuiltFrom { uuid } }
          }
        }
        """,
        id=build["graphql_id"],
    )["buildRebuild"]
    assert rebuilt == {
        "build": {"number": 1},
        "rebuild": {"number": 2, "message": "first", "rebuiltFrom": {"uuid": build["id"]}},
    }
    assert org.get("pipelines/p/builds/2")["rebuilt_from"]["id"] == build["id"]


def test_pipeline_create_update_delete(server: LiveServer) -> None:
    org = Org.create(server)
    organization_id = org.get("")["graphql_id"]
    created = execute(
        org.gql,
        """
        mutation Create($input: PipelineCreateInput!) {
          pipelineCreate(input: $input) {
            pipeline { id slug name defaultBranch repository { url } steps { yaml } }
            pipelineEdge { cursor node { slug } }
            organization { slug }
          }
        }
        """,
        input={
            "organizationId": organization_id,
            "name": "Web App",
            "repository": {"url": "https://example.com/web.git"},
            "steps": {"yaml": "steps:\n  - command: make\n"},
            "defaultBranch": "trunk",
        },
    )["pipelineCreate"]
    pipeline = created["pipeline"]
    assert pipeline["slug"] == "web-app"
    assert created["pipelineEdge"]["node"]["slug"] == "web-app"
    assert created["organization"] == {"slug": "acme"}
    rest = org.get("pipelines/web-app")
    assert rest["graphql_id"] == pipeline["id"]
    cursor = base64.b64decode(created["pipelineEdge"]["cursor"]).decode()
    assert cursor == f"cursor:{rest['id']}"
    assert (rest["repository"], rest["default_branch"]) == ("https://example.com/web.git", "trunk")
    assert rest["configuration"] == pipeline["steps"]["yaml"]

    updated = execute(
        org.gql,
        """
        mutation Update($id: ID!) {
          pipelineUpdate(input: { id: $id, description: "Front end", archived: true }) {
            pipeline { description archived }
          }
        }
        """,
        id=pipeline["id"],
    )
    assert updated["pipelineUpdate"]["pipeline"] == {"description": "Front end", "archived": True}
    rest = org.get("pipelines/web-app")
    assert rest["description"] == "Front end"
    assert rest["archived_at"] is not None

    deleted = execute(
        org.gql,
        """
        mutation Delete($id: ID!) {
          pipelineDelete(input: { id: $id }) { deletedPipelineID organization { slug } }
        }
        """,
        id=pipeline["id"],
    )
    assert deleted["pipelineDelete"] == {
        "deletedPipelineID": pipeline["id"],
        "organization": {"slug": "acme"},
    }
    assert org.rest.get("/v2/organizations/acme/pipelines/web-app").status_code == 404


def test_pipeline_create_without_steps_says_what_is_missing(server: LiveServer) -> None:
    org = Org.create(server)
    response = post(
        org.rest,
        """
        mutation Create($org: ID!) {
          pipelineCreate(input: {organizationId: $org, name: "X", repository: {url: "r"}}) {
            pipeline { slug }
          }
        }
        """,
        {"org": org.get("")["graphql_id"]},
    )
    body = response.json()
    assert body["data"] == {"pipelineCreate": None}
    assert body["errors"][0]["message"] == (
        "Validation Failed: configuration Step configuration is missing, "
        'expected `steps: { yaml: "..." }`'
    )


def test_annotate_and_list_annotations(server: LiveServer) -> None:
    org = Org.create(server)
    build = org.build()
    annotate = """
    mutation Annotate($build: ID!, $body: String!, $style: AnnotationStyle) {
      buildAnnotate(input: { buildID: $build, body: $body, style: $style, context: "tests" }) {
        annotation { context style body { text html } }
        build { number }
      }
    }
    """
    result = execute(org.gql, annotate, build=build["graphql_id"], body="**Done**", style="SUCCESS")
    assert result["buildAnnotate"] == {
        "annotation": {
            "context": "tests",
            "style": "SUCCESS",
            "body": {"text": "**Done**", "html": "<p><strong>Done</strong></p>\n"},
        },
        "build": {"number": 1},
    }
    listed = execute(
        org.gql,
        """
        query Notes($uuid: ID!) {
          build(uuid: $uuid) { annotations(first: 5) { count edges { node { uuid context } } } }
        }
        """,
        uuid=build["id"],
    )["build"]["annotations"]
    rest = org.get("pipelines/p/builds/1/annotations")
    assert listed["count"] == 1
    assert _nodes(listed) == [{"uuid": rest[0]["id"], "context": "tests"}]


def test_agent_by_slug_with_its_current_job_and_stop(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    agent = org.agent()
    job = agent.take_job()
    query = """
    query Agent($slug: ID!) {
      agent(slug: $slug) {
        id name connectionState isRunningJob metaData
        job { ... on JobTypeCommand { uuid state } }
      }
    }
    """
    found = execute(org.gql, query, slug=f"acme/{agent.id}")["agent"]
    rest = org.get(f"agents/{agent.id}")
    assert found == {
        "id": rest["graphql_id"],
        "name": rest["name"],
        "connectionState": "connected",
        "isRunningJob": True,
        "metaData": rest["meta_data"],
        "job": {"uuid": job["id"], "state": "RUNNING"},
    }
    agents = '{ organization(slug: "acme") { agents(first: 9) { count edges { node { name } } } } }'
    listed = execute(org.gql, agents)["organization"]["agents"]
    assert listed["count"] == 1

    stopped = execute(
        org.gql,
        "mutation Stop($id: ID!) { agentStop(input: { id: $id, graceful: false }) "
        "{ agent { connectionState } } }",
        id=rest["graphql_id"],
    )
    assert stopped["agentStop"]["agent"]["connectionState"] == "stopping"
    assert org.get(f"agents/{agent.id}")["connection_state"] == "stopping"
    assert org.get(f"pipelines/p/builds/1/jobs/{job['id']}")["state"] == "canceling"


def _upload_artifact(org: Org) -> tuple[dict, str]:
    org.build()
    agent = org.agent()
    job = agent.take_job()
    created = agent.call(
        "POST",
        f"/jobs/{job['id']}/artifacts",
        token=job["token"],
        json={"id": "b1", "artifacts": [{"path": "dist/app.txt", "file_size": 5}]},
    )
    assert created.status_code == 200, created.text
    (artifact_id,) = created.json()["artifact_ids"]
    return job, artifact_id


def test_job_artifacts_and_build_meta_data_agree_with_rest(server: LiveServer) -> None:
    org = Org.create(server)
    job, artifact_id = _upload_artifact(org)
    org.rest.post(
        "/v2/organizations/acme/pipelines/p/builds/1/meta-data", json={"key": "b", "value": "2"}
    )
    org.rest.post(
        "/v2/organizations/acme/pipelines/p/builds/1/meta-data", json={"key": "a", "value": "1"}
    )
    query = """
    query Build($uuid: ID!) {
      build(uuid: $uuid) {
        metaData(first: 10) { count edges { node { key value } } }
        jobs(first: 1) { edges { node { ... on JobTypeCommand {
          artifacts(first: 10) { count edges { node {
            uuid path size mimeType state downloadURL job { uuid }
          } } }
        } } } }
      }
    }
    """
    build = org.get("pipelines/p/builds/1")
    found = execute(org.gql, query, uuid=build["id"])["build"]
    assert _nodes(found["metaData"]) == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    assert found["metaData"]["count"] == len(build["meta_data"]) == 2
    (artifact,) = _nodes(_nodes(found["jobs"])[0]["artifacts"])
    (rest,) = org.get(f"pipelines/p/builds/1/jobs/{job['id']}/artifacts")
    assert artifact["uuid"] == rest["id"] == artifact_id
    assert (artifact["path"], artifact["size"], artifact["mimeType"], artifact["state"]) == (
        rest["path"],
        rest["file_size"],
        rest["mime_type"],
        rest["state"],
    )
    assert artifact["job"] == {"uuid": job["id"]}
    assert "/v3/artifacts/" in artifact["downloadURL"]


@pytest.mark.both_graphql_executions
def test_node_resolves_every_type_by_its_global_id(server: LiveServer) -> None:
    org = Org.create(server)
    job, artifact_id = _upload_artifact(org)
    org.build()
    build = org.get("pipelines/p/builds/1")
    annotation = org.rest.post(
        "/v2/organizations/acme/pipelines/p/builds/1/annotations", json={"body": "hi"}
    ).json()
    user = org.rest.get("/v2/user").json()
    agent = org.get("agents")[0]
    wait, block = build["jobs"][1], build["jobs"][2]
    expected = {
        global_id("Organization", org.get("")["id"]): "Organization",
        org.get("pipelines/p")["graphql_id"]: "Pipeline",
        build["graphql_id"]: "Build",
        global_id("JobTypeCommand", job["id"]): "JobTypeCommand",
        global_id("Job", job["id"]): "JobTypeCommand",  # REST's graphql_id spelling
        global_id("JobTypeWait", wait["id"]): "JobTypeWait",
        global_id("JobTypeBlock", block["id"]): "JobTypeBlock",
        agent["graphql_id"]: "Agent",
        global_id("Annotation", annotation["id"]): "Annotation",
        global_id("Artifact", artifact_id): "Artifact",
        user["graphql_id"]: "User",
        global_id("Viewer", user["id"]): "Viewer",
    }
    query = "query Node($id: ID!) { node(id: $id) { __typename id } }"
    for node_id, type_name in expected.items():
        found = execute(org.gql, query, id=node_id)["node"]
        assert found is not None, type_name
        assert found["__typename"] == type_name
    assert execute(org.gql, query, id=global_id("JobTypeBlock", job["id"]))["node"] is None
    assert execute(org.gql, query, id="not-an-id")["node"] is None


@pytest.mark.both_graphql_executions
def test_foreign_and_missing_objects_are_null(server: LiveServer) -> None:
    org = Org.create(server)
    other = Org.create(server, "other")
    foreign = other.build()
    other_agent = other.agent()
    query = """
    query Lookups($uuid: ID!, $node: ID!, $agent: ID!) {
      build(uuid: $uuid) { number }
      slug: build(slug: "other/p/1") { number }
      pipeline(slug: "other/p") { slug }
      organization(slug: "other") { slug }
      job(uuid: $uuid) { __typename }
      agent(slug: $agent) { name }
      node(id: $node) { id }
      missing: build(uuid: "00000000-0000-0000-0000-000000000000") { number }
    }
    """
    response = post(
        org.rest,
        query,
        {"uuid": foreign["id"], "node": foreign["graphql_id"], "agent": f"other/{other_agent.id}"},
    )
    assert response.json() == {
        "data": {
            "build": None,
            "slug": None,
            "pipeline": None,
            "organization": None,
            "job": None,
            "agent": None,
            "node": None,
            "missing": None,
        }
    }
    with pytest.raises(TransportQueryError) as refused:
        execute(org.gql, CANCEL_BUILD, id=foreign["graphql_id"])
    assert refused.value.errors is not None
    assert refused.value.errors[0]["message"] == "No build found"
    assert other.get("pipelines/p/builds/1")["state"] == "scheduled"


def test_viewer_and_their_organizations(server: LiveServer) -> None:
    org = Org.create(server)
    org.build()
    found = execute(
        org.gql,
        """
        {
          viewer {
            user { email name }
            organizations { count edges { node { slug name } } }
            builds(first: 5) { edges { node { number createdBy { ... on User { email } } } } }
          }
        }
        """,
    )["viewer"]
    assert found["user"] == {"email": org.identity.email, "name": "Test User"}
    assert found["organizations"]["count"] == 1
    assert _nodes(found["organizations"]) == [{"slug": "acme", "name": "Acme"}]
    assert _nodes(found["builds"]) == [{"number": 1, "createdBy": {"email": org.identity.email}}]


def test_missing_or_invalid_token_is_401_with_buildkites_message(server: LiveServer) -> None:
    Org.create(server)
    message = (
        "Authentication required. Please supply a valid API Access Token: "
        "https://buildkite.com/docs/apis/graphql-api#authentication"
    )
    for token in (None, "bkua_not-a-real-token"):
        response = post(server.client(token), "{ viewer { user { name } } }")
        assert response.status_code == 401
        assert response.json() == {"errors": [{"message": message}]}


def test_a_token_without_the_graphql_scope_is_refused(server: LiveServer) -> None:
    identity = server.identity("acme", scopes=["read_builds"])
    response = post(server.client(identity.api_token), "{ viewer { user { name } } }")
    assert response.status_code == 403
    assert response.json() == {
        "errors": [{"message": "Your access token doesn't have the graphql scope"}]
    }


def test_both_paths_and_string_variables_are_served(server: LiveServer) -> None:
    org = Org.create(server)
    query = "query Q($slug: ID!) { organization(slug: $slug) { slug } }"
    for path in ("/v1", "/graphql"):
        response = org.rest.post(path, json={"query": query, "variables": '{"slug": "acme"}'})
        assert response.json() == {"data": {"organization": {"slug": "acme"}}}
    assert org.rest.get("/v1").status_code == 405
    headers = {"content-type": "application/json"}
    malformed = org.rest.post("/v1", content=b"{not json", headers=headers)
    assert malformed.status_code == 400
