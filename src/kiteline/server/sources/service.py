"""Receiving a code host's delivery at a pipeline's webhook URL: check it, decide from the
pipeline's provider settings whether it builds, create the build, and record the delivery
whatever came of it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import (
    ConditionContext,
    PipelineError,
    branch_matches,
    evaluate_condition,
)
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds import service as builds
from kiteline.server.kit.errors import KitelineError, NotFound, Unauthorized
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import providers
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.sources import payloads
from kiteline.server.sources.models import SourceDelivery


class Outcome:
    BUILT = "built"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"
    FAILED = "failed"


@dataclass(frozen=True)
class Receipt:
    """What the code host is answered, and the delivery as recorded."""

    status_code: int
    delivery: SourceDelivery


async def receive(
    session: AsyncSession, *, token: str, headers: Mapping[str, str], body: bytes
) -> Receipt:
    """Handle one request to `/deliver/<token>` (header names lowercased). An unknown token is
    404 and a wrong signature 401, both recording nothing; everything else is recorded."""
    try:
        pipeline = await pipelines.get_by_webhook_token(session, token)
    except NotFound:
        raise NotFound("No pipeline has this webhook URL") from None
    incoming = payloads.identify(headers)
    if incoming is None:
        return _record(
            session,
            pipeline,
            payloads.Incoming("unknown", "", None),
            Outcome.MALFORMED,
            400,
            "No X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Event-Key header: "
            "not a delivery from a known code host",
        )
    secret = providers.setting(pipeline.settings, providers.SECRET_SETTING)
    if secret:
        holds, why = payloads.signature_holds(incoming.provider, headers, body, secret)
        if not holds:
            raise Unauthorized(f"{why}; check the webhook secret on both sides")
    # Deliveries to one pipeline take turns (the row lock; SQLite has one writer), so a repeat
    # sent while the first is being handled finds it.
    await pipelines.lock(session, pipeline.id)
    claim = f"{pipeline.id}:{incoming.provider}:{incoming.delivery_id}"
    if incoming.delivery_id is not None:
        first = await session.scalar(select(SourceDelivery).where(SourceDelivery.claim == claim))
        if first is not None:
            delivery = _record(
                session,
                pipeline,
                incoming,
                Outcome.DUPLICATE,
                200,
                f"Delivery {incoming.delivery_id} was received before",
            ).delivery
            delivery.build_id = first.build_id
            return Receipt(200, delivery)
    try:
        change = payloads.parse(incoming, body)
    except payloads.MalformedPayload as error:
        return _record(session, pipeline, incoming, Outcome.MALFORMED, 400, str(error))
    if isinstance(change, payloads.Ignored):
        return _record(session, pipeline, incoming, Outcome.IGNORED, 200, change.reason)
    refusal = await refusal_for(session, pipeline, change)
    if refusal is not None:
        return _record(session, pipeline, incoming, Outcome.IGNORED, 200, refusal)
    organization = await organizations.get(session, pipeline.organization_id)
    try:
        build = await builds.create(
            session,
            organization=organization,
            pipeline=pipeline,
            creator_id=None,
            new=builds.NewBuild(
                commit=change.commit,
                branch=change.branch,
                message=change.message,
                author=change.author,
                source="webhook",
                pull_request=change.pull_request,
                tag=change.tag,
            ),
        )
    except KitelineError as error:
        return _record(session, pipeline, incoming, Outcome.FAILED, 422, error.message)
    receipt = _record(
        session, pipeline, incoming, Outcome.BUILT, 201, f"Build #{build.number} created"
    )
    receipt.delivery.build_id = build.id
    receipt.delivery.claim = claim if incoming.delivery_id is not None else None
    return receipt


def _record(
    session: AsyncSession,
    pipeline: Pipeline,
    incoming: payloads.Incoming,
    outcome: str,
    status_code: int,
    reason: str,
) -> Receipt:
    delivery = SourceDelivery(
        public_id=uuid.uuid4(),
        pipeline_id=pipeline.id,
        provider=incoming.provider,
        event=incoming.event[:100],
        delivery_id=(incoming.delivery_id or None) and incoming.delivery_id[:200],
        outcome=outcome,
        status_code=status_code,
        reason=reason,
    )
    session.add(delivery)
    return Receipt(status_code, delivery)


async def refusal_for(
    session: AsyncSession, pipeline: Pipeline, change: payloads.Change
) -> str | None:
    """Why the pipeline's settings say no build for `change`, or None to build it."""

    def setting(key: str) -> Any:
        return providers.setting(pipeline.settings, key)

    if pipeline.archived_at is not None:
        return "The pipeline is archived"
    mode = setting("trigger_mode")
    if mode != "code":
        return f"The pipeline's trigger mode is {mode!r}: pushes and pull requests don't build"
    if change.kind == "pull_request":
        refusal = _pull_request_refusal(change, setting)
        if refusal is not None:
            return refusal
    else:
        if change.kind == "push" and not setting("build_branches"):
            return "The pipeline does not build branches (build_branches is off)"
        if change.kind == "tag" and not setting("build_tags"):
            return "The pipeline does not build tags (build_tags is off)"
        if pipeline.branch_configuration and not branch_matches(
            [pipeline.branch_configuration], change.branch
        ):
            return (
                f"{change.branch!r} does not match the pipeline's branch filter "
                f"{pipeline.branch_configuration!r}"
            )
    existing_setting = (
        "skip_pull_request_builds_for_existing_commits"
        if change.kind == "pull_request"
        else "skip_builds_for_existing_commits"
    )
    if setting(existing_setting) and await build_repository.commit_was_built(
        session, pipeline_id=pipeline.id, commit=change.commit
    ):
        return f"Commit {change.commit} was built before ({existing_setting} is on)"
    if setting("filter_enabled") and setting("filter_condition"):
        try:
            if not evaluate_condition(setting("filter_condition"), _condition_context(change)):
                return f"The filter condition {setting('filter_condition')!r} is false"
        except PipelineError as error:
            return f"The filter condition can't be evaluated: {error}"
    return None


def _pull_request_refusal(change: payloads.Change, setting: Any) -> str | None:
    if not setting("build_pull_requests"):
        return "The pipeline does not build pull requests (build_pull_requests is off)"
    action = change.pr_action or ""
    if action in payloads.PR_LABEL_ACTIONS:
        if not setting("build_pull_request_labels_changed"):
            return f"Pull request {action}: build_pull_request_labels_changed is off"
    elif action in payloads.PR_READY_ACTIONS:
        if not setting("build_pull_request_ready_for_review"):
            return "Pull request ready for review: build_pull_request_ready_for_review is off"
    elif action not in payloads.PR_CODE_ACTIONS:
        return f"Pull request {action or 'event'}: no new code to build"
    if setting("pull_request_branch_filter_enabled") and not branch_matches(
        [setting("pull_request_branch_filter_configuration") or ""], change.branch
    ):
        return f"{change.branch!r} does not match the pull request branch filter"
    return None


def _condition_context(change: payloads.Change) -> ConditionContext:
    pr = change.pull_request or {}
    return ConditionContext(
        variables={
            "build.branch": change.branch,
            "build.commit": change.commit,
            "build.message": change.message,
            "build.tag": change.tag,
            "build.source": "webhook",
            "build.author.name": change.author.get("name"),
            "build.author.email": change.author.get("email"),
            "build.pull_request.id": pr.get("id"),
            "build.pull_request.base_branch": pr.get("base"),
            "build.pull_request.labels": list(pr.get("labels") or []),
            "build.pull_request.draft": pr.get("draft"),
            "build.pull_request.repository": pr.get("repository"),
        }
    )


async def deliveries(
    session: AsyncSession, pipeline: Pipeline, *, offset: int, limit: int
) -> tuple[list[SourceDelivery], int]:
    """A page of the pipeline's deliveries, newest first, and how many there are."""
    where = SourceDelivery.pipeline_id == pipeline.id
    total = await session.scalar(select(func.count()).where(where)) or 0
    rows = await session.scalars(
        select(SourceDelivery)
        .where(where)
        .order_by(SourceDelivery.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total)
