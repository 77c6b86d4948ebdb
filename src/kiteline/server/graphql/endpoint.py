"""The GraphQL endpoint at /v1 (Buildkite's path on its GraphQL host) and /graphql.

POST `{query, variables, operationName}` with `Authorization: Bearer <token>`, the token
holding the `graphql` scope. A query is checked before anything runs (see `checks`); it then
runs in one transaction, and a request reaching an organization whose window budget is spent
is refused with 429 and rolled back. What the query actually cost is charged afterwards.
Every authenticated answer carries `RateLimit-*` and `RateLimit-Complexity-*` headers, and
`Buildkite-Include-Query-Stats: true` adds `stats` to the body.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    execute,
)

from kiteline.server.graphql.answers import AnswerCache, KeptAnswer, answer_key
from kiteline.server.graphql.budget import (
    BudgetExhausted,
    BudgetGate,
    ComplexityBudget,
    WindowUsage,
    organization_bucket,
)
from kiteline.server.graphql.checks import MAX_CACHED_QUERY, DocumentLimits, Refused, check
from kiteline.server.graphql.complexity import actual_complexity
from kiteline.server.graphql.context import GraphQLContext
from kiteline.server.graphql.errors import formatted
from kiteline.server.graphql.schema import KitelineSchema, schema_for
from kiteline.server.kit import limits, signatures
from kiteline.server.kit.errors import BadRequest, Forbidden, Unauthorized
from kiteline.server.kit.http import base_url, request_transaction
from kiteline.server.kit.ratelimit import RateLimiter
from kiteline.server.kit.signatures import Recorder
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations import service as organizations
from kiteline.server.organizations.service import Organization
from kiteline.server.tokens.auth import Principal, authenticate, record_use
from kiteline.settings import Settings

PATHS = ("/v1", "/graphql")
SCOPE = "graphql"
UNAUTHORIZED = (
    "Authentication required. Please supply a valid API Access Token: "
    "https://buildkite.com/docs/apis/graphql-api#authentication"
)
STATS_HEADER = "buildkite-include-query-stats"

router = APIRouter(include_in_schema=False)  # not REST: /v2/openapi.json leaves it out


@dataclass(frozen=True)
class GraphQLPost:
    query: str
    variables: dict[str, Any]
    operation_name: str | None


@dataclass
class Answer:
    #: None when `rendered` is the body (read back only to add `stats`).
    body: dict[str, Any] | None
    status: int = 200
    requested: int = 0
    actual: int = 0
    usage: WindowUsage | None = None
    headers: dict[str, str] = field(default_factory=dict)

    #: The body as sent, when `answer` already rendered it (to measure it).
    rendered: bytes | None = None

    def response(self, *, with_stats: bool) -> Response:
        headers = {
            **self.headers,
            "RateLimit-Complexity-Requested": str(self.requested),
            "RateLimit-Complexity-Actual": str(self.actual),
        }
        if self.usage is not None:
            headers.update(self.usage.headers())
        body = self.body
        if with_stats:
            if body is None:
                body = json.loads(self.rendered or b"{}")
            stats = {"requestedComplexity": self.requested, "actualComplexity": self.actual}
            body = {**body, "stats": stats}
        elif self.rendered is not None:
            return Response(
                self.rendered,
                status_code=self.status,
                headers=headers,
                media_type="application/json",
            )
        return JSONResponse(body or {}, status_code=self.status, headers=headers)


def render(body: dict[str, Any]) -> bytes:
    """As JSONResponse renders it."""
    return json.dumps(
        body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def introspection_only(operation: OperationDefinitionNode) -> bool:
    """Whether the operation reads nothing but the schema (`__schema`, `__type`,
    `__typename` at its root): no resolver of ours, no database."""
    return operation.operation == OperationType.QUERY and all(
        isinstance(selection, FieldNode) and selection.name.value.startswith("__")
        for selection in operation.selection_set.selections
    )


def _introspect(
    schema: KitelineSchema, document: DocumentNode, post: GraphQLPost, max_bytes: int
) -> tuple[ExecutionResult, bytes | None]:
    """An introspection query run and rendered whole, in a thread (off the event loop): the
    answer, and its body unless it is over `max_bytes`."""
    result = execute(
        schema.graphql_core,
        document,
        variable_values=post.variables,
        operation_name=post.operation_name,
    )
    assert isinstance(result, ExecutionResult)  # introspection resolvers are synchronous
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [formatted(error) for error in result.errors]
    rendered = render(body)
    return result, rendered if len(rendered) <= max_bytes else None


def _answer_too_large(size: int | None, maximum: int) -> dict[str, Any]:
    told = f"{size} bytes" if size is not None else "larger"
    return _errors(
        f"The answer would be {told}, which exceeds max answer size of {maximum} bytes: "
        "ask for fewer fields or smaller pages"
    )


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


async def read_post(request: Request) -> GraphQLPost:
    """The request body; `variables` may be an object or a JSON string (as in Buildkite's own
    curl example)."""
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"Problems parsing JSON: {error}") from error
    if not isinstance(body, dict):
        raise BadRequest('Expected a JSON object such as {"query": "{ viewer { user { name } } }"}')
    query, variables, operation_name = (
        body.get("query"),
        body.get("variables"),
        body.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("No query string was present")
    if isinstance(variables, str):
        try:
            variables = json.loads(variables) if variables.strip() else None
        except json.JSONDecodeError as error:
            raise BadRequest(f"variables is not valid JSON: {error}") from error
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("operationName must be a string")
    return GraphQLPost(query, variables or {}, operation_name or None)


async def _caller(request: Request, session: Any) -> Principal:
    try:
        principal = await authenticate(session, request)
    except Unauthorized as error:
        raise Unauthorized(UNAUTHORIZED) from error
    if SCOPE not in principal.token.scopes:
        raise Forbidden(f"Your access token doesn't have the {SCOPE} scope")
    return principal


def _default_bucket(principal: Principal, organizations_seen: list[Organization]) -> str:
    """A request that touches no organization's data spends from the caller's organization
    when they belong to exactly one (Buildkite's tokens belong to one), else their own."""
    if len(organizations_seen) == 1:
        return organization_bucket(organizations_seen[0].id)
    return f"user:{principal.user_id}"


def after_use(request: Request, principal: Principal) -> None:
    """The token's `last_used_at` is recorded once the answer is sent (graphql_endpoint)."""
    request.state.graphql_token = (principal.token.id, principal.token.last_used_at)


async def answer(request: Request, post: GraphQLPost) -> Answer:
    settings: Settings = request.app.state.settings
    budget: ComplexityBudget | None = request.app.state.graphql_budget
    schema: KitelineSchema = request.app.state.graphql_schema
    cache: AnswerCache = request.app.state.graphql_answers
    active = limits.current()
    checking = functools.partial(
        check,
        schema.graphql_core,
        post.query,
        post.variables,
        post.operation_name,
        max_complexity=settings.graphql_max_query_complexity,
        limits=DocumentLimits(aliases=active.graphql_aliases, fields=active.graphql_fields),
    )
    # A long document is parsed, counted and validated in a thread: a thousand aliases are
    # 0.1 s of parsing alone, which held the loop in one piece (decision 0046).
    checked = (
        await asyncio.to_thread(checking) if len(post.query) > MAX_CACHED_QUERY else checking()
    )
    # Queries never write: on SQLite they then read a snapshot without holding the write lock.
    read_only = isinstance(checked, Refused) or checked.operation.operation == OperationType.QUERY
    async with request_transaction(request, read_only=read_only) as session:
        principal = await _caller(request, session)
        after_use(request, principal)
        seen = principal.visible(await organizations.list_for_user(session, principal.user_id))
        gate = BudgetGate(budget, _default_bucket(principal, seen))
        if isinstance(checked, Refused):
            return Answer(
                {"errors": checked.errors}, requested=checked.requested, usage=await gate.peek()
            )
        key: Hashable | None = None
        recorder: Recorder | None = None
        if read_only and not introspection_only(checked.operation):
            key = answer_key(
                query=post.query,
                variables=post.variables,
                operation_name=post.operation_name,
                user=principal.user,
                token_id=principal.token.id,
                scopes=principal.token.scopes,
                token_organization_id=principal.token.organization_id,
                organizations=seen,
                base_url=base_url(request),
                limits=(active, settings.graphql_max_query_complexity),
            )
            kept = cache.get(key)
            if kept is not None:
                if await signatures.still_current(session, kept.check):
                    cache.hits += 1
                    for organization_id in kept.organizations:
                        await gate.enter_organization(organization_id)
                    await gate.enter_default()
                    return Answer(
                        None,
                        requested=kept.requested,
                        actual=kept.actual,
                        usage=await gate.charge(kept.actual),
                        rendered=kept.rendered,
                    )
                cache.misses += 1
                cache.discard(key)
            recorder = signatures.Recorder()
        context = GraphQLContext(
            request=request,
            session=session,
            principal=principal,
            organizations=seen,
            budget=gate,
            urls=Urls(base_url(request)),
            document=checked.document,
        )
        rendered: bytes | None = None
        if introspection_only(checked.operation):
            introspected, rendered = await asyncio.to_thread(
                _introspect, schema, checked.document, post, active.graphql_answer_bytes
            )
            data, errors = introspected.data, list(introspected.errors or [])
            if rendered is None:
                return Answer(
                    _answer_too_large(None, active.graphql_answer_bytes),
                    requested=checked.weight.requested,
                    usage=await gate.peek(),
                )
        else:
            signatures.record_on(session, recorder)
            try:
                result = await schema.execute(
                    post.query,
                    variable_values=post.variables,
                    context_value=context,
                    operation_name=post.operation_name,
                )
            finally:
                signatures.record_on(session, None)
            data, errors = result.data, list(result.errors or [])
        for error in errors:
            if isinstance(error.original_error, BudgetExhausted):
                raise error.original_error  # rolls the transaction back
        await gate.enter_default()
    actual = actual_complexity(
        schema.graphql_core, checked.document, checked.operation, post.variables, data
    )
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = [formatted(error) for error in errors]
    if rendered is None:
        rendered = render(body)
    if len(rendered) > active.graphql_answer_bytes:
        body, rendered = _answer_too_large(len(rendered), active.graphql_answer_bytes), None
    elif key is not None and recorder is not None and not recorder.unsigned and not errors:
        cache.put(
            key,
            KeptAnswer(
                parts=tuple(recorder.parts),
                rendered=rendered,
                requested=checked.weight.requested,
                actual=actual,
                organizations=tuple(gate.reached),
            ),
        )
    return Answer(
        body,
        requested=checked.weight.requested,
        actual=actual,
        usage=await gate.charge(actual),
        rendered=rendered,
    )


@router.post(PATHS[0])
@router.post(PATHS[1])
async def graphql_endpoint(request: Request) -> Response:
    with_stats = request.headers.get(STATS_HEADER, "").strip().lower() == "true"
    try:
        return (await answer(request, await read_post(request))).response(with_stats=with_stats)
    except BudgetExhausted as exhausted:
        refused = Answer(_errors(str(exhausted)), status=429, usage=exhausted.usage)
        return refused.response(with_stats=False)
    except (BadRequest, Unauthorized, Forbidden) as error:
        return JSONResponse(_errors(error.message), status_code=error.status)
    finally:
        used = getattr(request.state, "graphql_token", None)
        if used is not None:
            await record_use(request, *used)


@router.get(PATHS[0])
@router.get(PATHS[1])
async def graphql_get() -> JSONResponse:
    return JSONResponse(
        _errors('GraphQL requests are POSTed as JSON: {"query": "...", "variables": {...}}'),
        status_code=405,
        headers={"Allow": "POST"},
    )


def install_graphql(app: FastAPI, settings: Settings) -> None:
    """Mount the endpoint with the schema for `settings.graphql_execution`; its budgets
    share REST's rate-limit storage (call after `install_rate_limits`)."""
    app.state.graphql_schema = schema_for(settings.graphql_execution)
    app.state.graphql_answers = AnswerCache()
    limiter: RateLimiter = app.state.rate_limiter
    app.state.graphql_budget = (
        ComplexityBudget(
            limiter.storage,
            per_window=settings.graphql_complexity_per_window,
            window_seconds=settings.graphql_window_seconds,
        )
        if settings.graphql_complexity_per_window
        else None
    )
    app.include_router(router)
