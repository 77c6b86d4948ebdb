"""The OpenAPI document: FastAPI's generated paths with Buildkite's JSON shapes and errors added.

FastAPI sees `dict[str, Any]` return types, so the response bodies, error statuses, headers and
list query strings of /v2 are described here, in one table; the shapes mirror the `*_json`
functions (objects stay open to extra keys, as Buildkite adds fields over time).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from kiteline.server.annotations.service import STYLES
from kiteline.server.artifacts.service import STATES as ARTIFACT_STATES
from kiteline.server.builds.query import STATE_FILTERS
from kiteline.server.builds.states import BuildState
from kiteline.server.jobs.states import JobState, JobType

Schema = dict[str, Any]

# --- JSON Schema building blocks -------------------------------------------------------------

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
URL: Schema = {"type": "string", "format": "uri"}
UUID: Schema = {"type": "string", "format": "uuid"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULL: Schema = {"type": "null"}
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}
TYPES: dict[str, Schema] = {
    "str": STRING,
    "int": INTEGER,
    "bool": {"type": "boolean"},
    "url": URL,
    "uuid": UUID,
    "time": TIME,
    "null": NULL,
    "map": STRING_MAP,  # string to string
    "object": {"type": "object"},
    "any": {},
}


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def nullable(schema: Schema) -> Schema:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, NULL]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(values: Any) -> Schema:
    return {"type": "string", "enum": sorted(str(value) for value in values)}


def fields(spec: str) -> dict[str, Schema]:
    """`name:type` words: type is one of TYPES (`str` if left out) or a component's name;
    `[]` after it makes an array of it, then `?` lets it be null."""
    parsed = {}
    for word in spec.split():
        name, _, kind = word.partition(":")
        kind = kind or "str"
        base = kind.rstrip("?").removesuffix("[]")
        schema = ref(base) if base[0].isupper() else TYPES[base]
        if "[]" in kind:
            schema = array(schema)
        parsed[name] = nullable(schema) if kind.endswith("?") else schema
    return parsed


def obj(spec: str = "", **special: Schema) -> Schema:
    """An object whose `spec` keys (and `special` ones) are always present; other keys are
    allowed, as Buildkite adds fields over time."""
    required = fields(spec) | special
    return {
        "type": "object",
        "properties": required,
        "required": list(required),
        "additionalProperties": True,
    }


def sometimes(schema: Schema, spec: str) -> Schema:
    """`schema` with the `spec` keys that are present only in some answers."""
    return {**schema, "properties": schema["properties"] | fields(spec)}


#: REST shows a finished job as passed or failed, and limiting/limited as scheduled (rest_state).
REST_JOB_STATES = {"passed", "failed"} | (
    {state.value for state in JobState} - {"finished", "limiting", "limited"}
)
IDENTIFIED = "id:uuid graphql_id url:url web_url:url"
CLUSTER = "cluster_id:null cluster_url:null"


def job(job_type: JobType, spec: str = "", **special: Schema) -> Schema:
    """The fields every job has, then those of its type (waiters have no more)."""
    return obj(
        f"id:uuid graphql_id step_key:str? build_url:url web_url:url {spec}",
        type={"const": job_type.value},
        state=enum(REST_JOB_STATES),
        step=obj("id:uuid signature:object?"),
        **special,
    )


SCHEMAS: dict[str, Schema] = {
    "NotificationService": obj(
        "id:uuid graphql_id url:url description enabled:bool scope scope_uuids:uuid[]"
        " branch_configuration build_states:object created_at:time created_by:User?"
        " disabled_reason:str? consecutive_failures:int deliveries_url:url ping_url:url",
        provider=obj("id name"),
        settings=obj("url:url version:int token token_mode events:str[] tls_verify:bool"),
    ),
    "WebhookDelivery": obj(
        "id:uuid url:url event state attempts_count:int next_attempt_at:time?"
        " created_at:time finished_at:time? redelivery_of:uuid? redeliver_url:url"
        " payload:object",
        attempts=array(
            obj(
                "number:int started_at:time duration_ms:int status_code:int?"
                " response_excerpt:str? error:str? succeeded:bool"
            )
        ),
    ),
    "SourceDelivery": obj(
        "id:uuid provider event delivery_id:str? outcome reason status_code:int created_at:time",
        build=nullable(obj("id:uuid number:int url:url web_url:url")),
    ),
    "Error": obj("message"),
    "ValidationError": obj(message={"const": "Validation Failed"}, errors=array(obj("field code"))),
    "RateLimitError": obj(
        "message limit:int current:int reset:int", scope=enum(("rest", "rest_user"))
    ),
    "Organization": obj(
        f"{IDENTIFIED} name slug pipelines_url:url agents_url:url emojis_url:url created_at:time"
    ),
    "User": obj("id:uuid graphql_id name email avatar_url:url created_at:time"),
    "AccessToken": obj(
        "uuid:uuid scopes:str[] description:str? created_at:time expires_at:time?",
        user=obj("name email"),
    ),
    "Pipeline": obj(
        f"{IDENTIFIED} name description:str? slug repository {CLUSTER}"
        " pipeline_template_uuid:null branch_configuration:str? default_branch"
        " skip_queued_branch_builds:bool skip_queued_branch_builds_filter:str?"
        " cancel_running_branch_builds:bool cancel_running_branch_builds_filter:str?"
        " allow_rebuilds:bool builds_url:url badge_url:url created_by:User?"
        " created_at:time archived_at:time? env:map? scheduled_builds_count:int"
        " running_builds_count:int scheduled_jobs_count:int running_jobs_count:int"
        " waiting_jobs_count:int visibility tags:str[]? configuration steps:object[]",
        provider=obj("id webhook_url settings:object"),
    ),
    "Build": sometimes(
        obj(
            f"{IDENTIFIED} number:int blocked:bool blocked_state:str? cancel_reason:str?"
            " message:str? commit branch tag:str? env:map source author:object created_at:time"
            " scheduled_at:time? started_at:time? failing_at:time? finished_at:time?"
            f" pull_request:object? merge_queue:null {CLUSTER} creator:User? meta_data:map",
            state=enum(BuildState),
            rebuilt_from=nullable(obj("id:uuid number:int url:url")),
            triggered_from=nullable(obj("build_id:uuid build_number:int build_pipeline_slug")),
        ),
        # jobs and pipeline unless excluded; job_state_counts on a single build only
        "jobs:Job[] pipeline:Pipeline job_state_counts:JobStateCounts",
    ),
    "JobStateCounts": obj("total:int", states={"type": "object", "additionalProperties": INTEGER}),
    "Job": {"oneOf": [ref(f"{kind.title()}Job") for kind in JobType]},
    "WaiterJob": job(JobType.WAITER),
    "ManualJob": job(
        JobType.MANUAL,
        "label:str? unblocked_by:User? unblocked_at:time? unblockable:bool unblock_url:url"
        " prompt:str? fields:object[] created_at:time runnable_at:time? finished_at:time?",
    ),
    "TriggerJob": job(
        JobType.TRIGGER,
        "name:str? label:str? async:bool trigger_error:str? soft_failed:bool created_at:time"
        " started_at:time? finished_at:time?",
        triggered_build=nullable(obj("id:uuid number:int url:url web_url:url")),
    ),
    "ScriptJob": job(
        JobType.SCRIPT,
        "name:str? label:str? agent_query_rules:str[] log_url:url raw_log_url:url"
        " artifacts_url:url command:str? soft_failed:bool exit_status:int? signal:str?"
        " signal_reason:str? artifact_paths agent:Agent? created_at:time scheduled_at:time?"
        " runnable_at:time? started_at:time? finished_at:time? expired_at:null retried:bool"
        " retried_in_job_id:uuid? retries_count:int? retry_type:str?"
        " parallel_group_index:int? parallel_group_total:int? matrix:any group_key:str?"
        f" {CLUSTER} cluster_queue_id:null cluster_queue_url:null",
        priority=obj("number:int"),
        retry_source=nullable(obj("job_id:uuid retry_type:str?")),
    ),
    "Agent": obj(
        f"{IDENTIFIED} name connection_state hostname:str? ip_address:str? user_agent:str?"
        " version:str? arch:str? queue creator:User? created_at:time connected_at:time?"
        " disconnected_at:time? lost_at:time? stopped_at:time? last_job_finished_at:time?"
        " priority:int? meta_data:str[] paused:bool job:Job?"
    ),
    "Artifact": obj(
        "id:uuid graphql_id job_id:uuid url:url download_url:url path dirname filename"
        " mime_type file_size:int sha1sum:str? glob_path:null original_path:null",
        state=enum(ARTIFACT_STATES),
    ),
    "ArtifactDownload": obj("url:url"),
    "Annotation": obj(
        "id:uuid context job_id:uuid? priority:int body_html:str? created_at:time updated_at:time",
        style=enum(STYLES),
        scope=enum(("build", "job")),
    ),
    "MetaData": STRING_MAP,
    "MetaDataItem": obj("key value"),
    "RateLimitStatus": obj(
        scopes=obj(rest=obj("limit:int current:int reset:int reset_at:time? enforced:bool"))
    ),
    "JobLog": obj("url:url content size:int header_times:int[]"),
    "JobEnv": obj("env:map"),
    "Meta": obj("webhook_ips:str[]"),
    "Health": obj("status version pid:int"),
}

# --- Responses, headers, parameters ----------------------------------------------------------


#: Every counted request (all but a 401) gets its budgets' headers, errors included.
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    f"RateLimit-{user}{name}": schema
    for user in ("", "User-")
    for name, schema in (
        ("Scope", STRING),
        ("Remaining", INTEGER),
        ("Limit", INTEGER),
        ("Reset", INTEGER),
        ("Warning", STRING),
    )
}
HEADERS: dict[str, Schema] = {
    name: {"description": "The rate-limit budget as this request left it", "schema": schema}
    for name, schema in RATE_LIMIT_HEADERS.items()
}
HEADERS |= {
    "Link": {
        "description": 'Pages: `<url>; rel="first"`, `prev`, `next`, `last`, comma-separated',
        "schema": STRING,
    },
    "Location": {"description": "The short-lived signed URL", "required": True, "schema": URL},
}
COUNTED = {name: ref(name, "headers") for name in RATE_LIMIT_HEADERS}


def error_response(description: str, schema: Schema, *, counted: bool = True) -> Schema:
    return {
        "description": description,
        "headers": COUNTED if counted else {},
        "content": {"application/json": {"schema": schema}},
    }


ERRORS: dict[int, tuple[str, Schema]] = {
    400: ("BadRequest", error_response("Malformed JSON or an unusable argument", ref("Error"))),
    401: ("Unauthorized", error_response("No valid API access token", ref("Error"), counted=False)),
    403: ("Forbidden", error_response("The token lacks the scope this route needs", ref("Error"))),
    404: ("NotFound", error_response("No such object, or not visible to the token", ref("Error"))),
    413: ("TooLarge", error_response("The body is larger than the server accepts", ref("Error"))),
    422: (
        "Unprocessable",
        error_response(
            "Validation Failed with field errors, or a refusal of the object's current state",
            {"anyOf": [ref("ValidationError"), ref("Error")]},
        ),
    ),
    429: ("RateLimited", error_response("A rate limit is exhausted", ref("RateLimitError"))),
}


def query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


#: The common spellings of what `kit.query.flag` takes (`yes`/`no`, `on`/`off`, any case and
#: an empty value are taken too; listing them all would multiply schemathesis's cases).
BOOLEAN_FLAG: Schema = {"type": "string", "enum": ["true", "false", "True", "False", "1", "0"]}
PARAMETERS: dict[str, Schema] = {
    "after": query("after", STRING, "The `links.next` cursor of the previous page"),
    "delivery_state": query(
        "state", enum(("pending", "succeeded", "failed")), "Deliveries in this state"
    ),
    "page": query("page", {**INTEGER, "minimum": 0}, "Page number, from 1 (0 is 1)"),
    "per_page": query(
        "per_page", {**INTEGER, "minimum": 0}, "Page size, 30 by default, 1 to 100 (capped)"
    ),
    "branch": query("branch", STRING, "Builds of this branch"),
    "commit": query("commit", STRING, "Builds of this full commit SHA"),
    "state": query("state", enum(STATE_FILTERS), "Builds in this state (`finished` for any end)"),
    "creator": query("creator", UUID, "Builds created by this user"),
    "created_from": query("created_from", TIME, "Builds created at or after"),
    "created_to": query("created_to", TIME, "Builds created before"),
    "finished_from": query("finished_from", TIME, "Builds finished at or after"),
    "include_retried_jobs": query("include_retried_jobs", BOOLEAN_FLAG, "Show retried jobs too"),
    "exclude_jobs": query("exclude_jobs", BOOLEAN_FLAG, "Leave `jobs` out"),
    "exclude_pipeline": query("exclude_pipeline", BOOLEAN_FLAG, "Leave `pipeline` out"),
    "artifact_state": query("state", enum(ARTIFACT_STATES), "Artifacts in this state"),
    "path": query("path", STRING, "Artifacts at this path, or matching this `*` glob"),
    "annotation_scope": query("scope", enum(("build", "job", "all")), "Which annotations"),
    "omit_body": query("omit_body", BOOLEAN_FLAG, "Leave `body_html` null"),
    "name": query("name", STRING, "Agents with this name"),
    "hostname": query("hostname", STRING, "Agents on this host"),
    "version": query("version", STRING, "Agents of this version"),
}
PAGE = ("page", "per_page")
BUILD_VIEW = ("include_retried_jobs", "exclude_jobs", "exclude_pipeline")
BUILD_FILTERS = (
    "branch",
    "commit",
    "state",
    "creator",
    "created_from",
    "created_to",
    "finished_from",
    *BUILD_VIEW,
)

# --- The table: what each /v2 route answers ---------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One route's success answer and what else it can answer besides 401 and 429."""

    status: int = 200
    body: Schema | None = None  # None: no content
    errors: tuple[int, ...] = ()  # besides 401, 429, 403 (scoped), 404 (has path parameters)
    scoped: bool = True
    paged: bool = False
    query: tuple[str, ...] = ()
    alternatives: dict[str, Schema] = field(default_factory=dict)  # other media types


def listing(name: str, *query: str, errors: tuple[int, ...] = ()) -> Operation:
    return Operation(body=array(ref(name)), paged=True, query=(*PAGE, *query), errors=errors)


def body(name: str, status: int = 200, *errors: int) -> Operation:
    return Operation(status=status, body=ref(name), errors=errors)


NO_CONTENT = Operation(status=204)
ORG = "/v2/organizations/{org}"
PIPELINE = ORG + "/pipelines/{slug}"
BUILDS = ORG + "/pipelines/{pipeline}/builds"
BUILD = BUILDS + "/{number}"
JOB_PATHS = (BUILD + "/jobs/{job_id}", ORG + "/jobs/{job_id}")
ARTIFACT = BUILD + "/jobs/{job_id}/artifacts/{artifact_id}"
LOG = Operation(body=ref("JobLog"), alternatives={"text/plain": STRING, "text/html": STRING})
ENV = Operation(body=ref("JobEnv"), alternatives={"text/plain": STRING})

SERVICES = ORG + "/services"
SERVICE = SERVICES + "/{service_id}"
DELIVERY = SERVICE + "/deliveries/{delivery_id}"


def cursor_page(name: str, *query: str) -> Operation:
    """Buildkite's newer lists: `{"items": [...], "links": {"self", "next"?}}`."""
    return Operation(
        body=obj(items=array(ref(name)), links=obj("self:url")),
        query=("per_page", "after", *query),
        errors=(400, 422),
    )


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", SERVICES): cursor_page("NotificationService"),
    ("post", SERVICES): body("NotificationService", 201),
    ("get", SERVICE): body("NotificationService"),
    ("patch", SERVICE): body("NotificationService"),
    ("delete", SERVICE): NO_CONTENT,
    ("put", SERVICE + "/enable"): body("NotificationService"),
    ("put", SERVICE + "/disable"): body("NotificationService"),
    ("post", SERVICE + "/ping"): body("WebhookDelivery", 201),
    ("get", SERVICE + "/deliveries"): cursor_page("WebhookDelivery", "delivery_state"),
    ("get", DELIVERY): body("WebhookDelivery"),
    ("post", DELIVERY + "/redeliver"): body("WebhookDelivery", 201, 422),
    ("get", "/v2/organizations"): listing("Organization"),
    ("get", ORG): body("Organization"),
    ("get", ORG + "/rate_limit"): body("RateLimitStatus"),
    ("get", "/v2/user"): body("User"),
    ("get", "/v2/access-token"): Operation(body=ref("AccessToken"), scoped=False),
    ("delete", "/v2/access-token"): Operation(status=204, scoped=False),
    ("get", ORG + "/pipelines"): listing("Pipeline"),
    ("post", ORG + "/pipelines"): body("Pipeline", 201),
    ("get", PIPELINE): body("Pipeline"),
    ("patch", PIPELINE): body("Pipeline"),
    ("delete", PIPELINE): NO_CONTENT,
    ("post", PIPELINE + "/archive"): body("Pipeline", 200, 422),
    ("post", PIPELINE + "/unarchive"): body("Pipeline", 200, 422),
    ("get", PIPELINE + "/source-deliveries"): listing("SourceDelivery"),
    ("get", "/v2/builds"): listing("Build", *BUILD_FILTERS, errors=(400,)),
    ("get", ORG + "/builds"): listing("Build", *BUILD_FILTERS, errors=(400,)),
    ("get", BUILDS): listing("Build", *BUILD_FILTERS, errors=(400,)),
    ("post", BUILDS): body("Build", 201, 422),
    ("get", BUILD): Operation(body=ref("Build"), query=BUILD_VIEW),
    ("put", BUILD + "/cancel"): body("Build", 200, 422),
    ("put", BUILD + "/rebuild"): body("Build", 200, 422),
    **{("get", path): body("Job") for path in JOB_PATHS},
    **{("put", path + "/retry"): body("Job", 200, 400, 422) for path in JOB_PATHS},
    **{("put", path + "/unblock"): body("Job", 200, 400, 422) for path in JOB_PATHS},
    **{("get", path + log): LOG for path in JOB_PATHS for log in ("/log", "/log.{suffix}")},
    **{("delete", path + "/log"): NO_CONTENT for path in JOB_PATHS},
    **{("get", path + env): ENV for path in JOB_PATHS for env in ("/env", "/env.{suffix}")},
    ("get", ORG + "/agents"): listing("Agent", "name", "hostname", "version"),
    ("get", ORG + "/agents/{agent_id}"): body("Agent"),
    ("put", ORG + "/agents/{agent_id}/stop"): Operation(status=204, errors=(400,)),
    ("get", BUILD + "/annotations"): Operation(
        body=array(ref("Annotation")), query=("annotation_scope", "omit_body")
    ),
    ("post", BUILD + "/annotations"): body("Annotation", 201),
    ("delete", BUILD + "/annotations/{id_or_context}"): NO_CONTENT,
    ("get", BUILD + "/meta-data"): body("MetaData"),
    ("post", BUILD + "/meta-data"): body("MetaDataItem", 201),
    ("get", BUILD + "/meta-data/{key}"): body("MetaDataItem"),
    ("get", BUILD + "/artifacts"): listing("Artifact", "artifact_state", "path"),
    ("get", BUILD + "/jobs/{job_id}/artifacts"): listing("Artifact", "artifact_state", "path"),
    ("get", ARTIFACT): body("Artifact"),
    ("delete", ARTIFACT): NO_CONTENT,
    ("get", ARTIFACT + "/download"): Operation(status=302, body=ref("ArtifactDownload")),
}
UNAUTHENTICATED: dict[tuple[str, str], Operation] = {
    ("get", "/v2/meta"): body("Meta"),
    ("get", "/healthz"): body("Health"),
}
#: The formats a `.{suffix}` route serves; any other suffix is a 404.
FORMATS = {"log.{suffix}": ("txt", "html", "json"), "env.{suffix}": ("txt", "json")}
SUCCESS = {200: "OK", 201: "Created", 204: "No content", 302: "Found: follow `Location`"}


def _responses(operation: Operation, *, has_body: bool, has_path: bool, auth: bool) -> Schema:
    headers = dict(COUNTED) if auth else {}
    success: Schema = {"description": SUCCESS[operation.status]}
    if operation.body is not None:
        content = {"application/json": {"schema": operation.body}}
        content |= {media: {"schema": schema} for media, schema in operation.alternatives.items()}
        success["content"] = content
    success_headers = dict(headers)
    if operation.paged:
        success_headers["Link"] = ref("Link", "headers")
    if operation.status == 302:
        success_headers["Location"] = ref("Location", "headers")
    if success_headers:
        success["headers"] = success_headers
    statuses = set(operation.errors)
    if auth:
        statuses |= {401, 429} | ({403} if operation.scoped else set())
    if auth and has_path:
        statuses.add(404)
    if has_body:  # JSON that does not parse is a 400, a body of the wrong shape a 422
        statuses |= {400, 413, 422}
    if operation.query:  # a query value nothing understands is a 400 naming it
        statuses.add(400)
    if operation.paged:  # pages deeper than MAX_PAGE are refused
        statuses.add(400)
    return {str(operation.status): success} | {
        str(status): ref(ERRORS[status][0], "responses") for status in sorted(statuses)
    }


def _describe(path: str, method: str, spec: Schema, operation: Operation, *, auth: bool) -> None:
    parameters = spec.setdefault("parameters", [])
    for parameter in parameters:
        not_null = [option for option in parameter["schema"].get("anyOf", []) if option != NULL]
        if len(not_null) == 1:  # a path segment or query string is never JSON null
            parameter["schema"] = not_null[0]
        if parameter["in"] == "path" and parameter["name"] == "suffix":
            parameter["schema"] = enum(FORMATS[path.rsplit("/", 1)[1]])
    parameters.extend(ref(name, "parameters") for name in operation.query)
    if not parameters:
        del spec["parameters"]
    has_path = any(parameter.get("in") == "path" for parameter in parameters)
    spec["responses"] = _responses(
        operation, has_body="requestBody" in spec, has_path=has_path, auth=auth
    )
    spec["security"] = [{"bearer": []}, {"access_token": []}] if auth else []


# --- /v3: the agent protocol ------------------------------------------------------------------

#: Agent API answers that are not a JSON object: (status, media type or None for no content).
AGENT_SUCCESS: dict[tuple[str, str], tuple[int, str | None]] = {
    ("post", "/v3/jobs/{job_id}/chunks"): (201, None),
    ("delete", "/v3/jobs/{job_id}/annotations/{context}"): (204, None),
    ("post", "/v3/artifacts/{artifact_id}/upload"): (201, None),
    ("put", "/v3/artifacts/{artifact_id}/upload"): (201, None),
    ("get", "/v3/artifacts/{artifact_id}/download"): (200, "application/octet-stream"),
}
#: Authorised by the signed URL in their query string, not by a token.
SIGNED = {"/v3/artifacts/{artifact_id}/upload", "/v3/artifacts/{artifact_id}/download"}
AGENT_ERRORS: dict[int, str] = {
    400: "Malformed JSON, an unusable query value, or a chunk the job can't take",
    401: "No valid registration, agent access or job token",
    403: "The signed URL is invalid or expired",
    404: "No such job, build, artifact or key, or not this agent's",
    413: "The body is larger than the server accepts",
    422: "Validation Failed with field errors, or a refusal of the job's current state",
}


def _describe_agent(path: str, method: str, spec: Schema) -> None:
    """Every status an agent API route answers: the agent protocol has no rate limits and
    its own tokens; errors are Buildkite's `{"message"}` (422s may add `errors`)."""
    status, media = AGENT_SUCCESS.get((method, path), (None, "application/json"))
    responses = spec.setdefault("responses", {})
    success_status = str(status) if status is not None else next(iter(responses), "200")
    success = responses.pop(success_status, {"description": "OK"})
    responses.clear()
    if media is None:
        success.pop("content", None)
        success["description"] = "Done (no content)"
    elif media != "application/json":
        success["content"] = {media: {"schema": {"type": "string", "format": "binary"}}}
    responses[success_status] = success
    signed = path in SIGNED
    statuses = {400, 404} | ({403} if signed else {401})
    if "requestBody" in spec or path.endswith(("/chunks", "/upload")):
        statuses |= {413}
    if "requestBody" in spec or not signed:
        statuses |= {422}
    for code in sorted(statuses):
        schema = ref("Error") if code != 422 else {"anyOf": [ref("ValidationError"), ref("Error")]}
        responses[str(code)] = {
            "description": AGENT_ERRORS[code],
            "content": {"application/json": {"schema": schema}},
        }
    spec["security"] = [] if signed else [{"agent_token": []}]


def enrich(document: Schema) -> Schema:
    """Add the shapes, errors, headers and security to FastAPI's generated `document`."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's own 422 shape ({"detail": [...]}) is not what our error handler sends.
    schemas.pop("HTTPValidationError", None)
    schemas |= copy.deepcopy(SCHEMAS)
    components["responses"] = copy.deepcopy(dict(ERRORS.values()))
    components["headers"] = copy.deepcopy(HEADERS)
    components["parameters"] = copy.deepcopy(PARAMETERS)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API access token"},
        "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
        "agent_token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`: a registration token (register), an agent's "
            "access token, or a job's token (the calls made for that job)",
        },
    }
    for path, methods in document.get("paths", {}).items():
        for method, spec in methods.items():
            if (method, path) in OPERATIONS:
                _describe(path, method, spec, OPERATIONS[method, path], auth=True)
            elif (method, path) in UNAUTHENTICATED:
                _describe(path, method, spec, UNAUTHENTICATED[method, path], auth=False)
            elif path.startswith("/v3/"):
                _describe_agent(path, method, spec)
            elif "422" in spec.get("responses", {}):
                spec["responses"]["422"] = ref("Unprocessable", "responses")
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the enriched document at the app's `openapi_url`, built once on first use."""
    generate = app.openapi
    built: list[Schema] = []

    def openapi() -> Schema:
        if not built:
            built.append(enrich(copy.deepcopy(generate())))
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]
