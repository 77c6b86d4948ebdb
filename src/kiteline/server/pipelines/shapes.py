"""The Pipeline JSON that REST, build JSON and webhooks show."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import PipelineError, parse_pipeline, to_rest_steps
from kiteline.server.builds import repository as build_repository
from kiteline.server.kit import offload
from kiteline.server.kit.ids import graphql_id
from kiteline.server.kit.timefmt import iso
from kiteline.server.kit.urls import Urls
from kiteline.server.pipelines import providers
from kiteline.server.pipelines.models import Pipeline
from kiteline.server.users import service as users
from kiteline.server.users.service import User
from kiteline.server.users.shapes import user_json


def _rest_steps_of(configuration: str) -> list[dict[str, Any]]:
    """The configuration's steps in REST form."""
    try:
        return to_rest_steps(parse_pipeline(configuration))
    except PipelineError:
        return []


#: Cached: every build list embeds its pipeline, and parsing YAML per request was a visible
#: share of the time. Callers only serialize it.
_rest_steps_small = lru_cache(maxsize=256)(_rest_steps_of)
#: Large configurations' steps, parsed off the loop by `render_pipelines`; oldest out first.
_large_rest_steps: dict[str, list[dict[str, Any]]] = {}
LARGE_CACHED = 8


def _rest_steps(configuration: str) -> list[dict[str, Any]]:
    steps = _large_rest_steps.get(configuration)
    return steps if steps is not None else _rest_steps_small(configuration)


def pipeline_json(
    urls: Urls,
    org_slug: str,
    pipeline: Pipeline,
    *,
    creator: User | None,
    counts: build_repository.PipelineCounts,
    show_webhook_url: bool = False,
) -> dict[str, Any]:
    url = urls.pipeline(org_slug, pipeline.slug)
    return {
        "id": str(pipeline.id),
        "graphql_id": graphql_id("Pipeline", pipeline.id),
        "url": url,
        "web_url": urls.web(f"{org_slug}/{pipeline.slug}"),
        "name": pipeline.name,
        "description": pipeline.description,
        "slug": pipeline.slug,
        "repository": pipeline.repository,
        "cluster_id": None,
        "cluster_url": None,
        "pipeline_template_uuid": None,
        "branch_configuration": pipeline.branch_configuration,
        "default_branch": pipeline.default_branch,
        "skip_queued_branch_builds": bool(pipeline.settings.get("skip_queued_branch_builds")),
        "skip_queued_branch_builds_filter": pipeline.settings.get(
            "skip_queued_branch_builds_filter"
        ),
        "cancel_running_branch_builds": bool(pipeline.settings.get("cancel_running_branch_builds")),
        "cancel_running_branch_builds_filter": pipeline.settings.get(
            "cancel_running_branch_builds_filter"
        ),
        "allow_rebuilds": pipeline.settings.get("allow_rebuilds", True),
        "provider": {
            "id": providers.provider_id(pipeline.repository, pipeline.settings),
            "webhook_url": webhook_url(urls, pipeline) if show_webhook_url else "",
            "settings": providers.provider_settings(pipeline.settings, pipeline.repository),
        },
        "builds_url": f"{url}/builds",
        "badge_url": urls.badge(pipeline.badge_key),
        "created_by": user_json(creator),
        "created_at": iso(pipeline.created_at),
        "archived_at": iso(pipeline.archived_at),
        "env": pipeline.env or None,
        "scheduled_builds_count": counts.scheduled_builds_count,
        "running_builds_count": counts.running_builds_count,
        "scheduled_jobs_count": counts.scheduled_jobs_count,
        "running_jobs_count": counts.running_jobs_count,
        "waiting_jobs_count": counts.waiting_jobs_count,
        "visibility": pipeline.visibility,
        "tags": pipeline.settings.get("tags"),
        "configuration": pipeline.configuration,
        "steps": _rest_steps(pipeline.configuration),
    }


def webhook_url(urls: Urls, pipeline: Pipeline) -> str:
    """Where the pipeline's code host sends its events: the token is the secret."""
    return urls.web(f"deliver/{pipeline.webhook_token}") if pipeline.webhook_token else ""


async def render_pipelines(
    session: AsyncSession,
    urls: Urls,
    org_slug: str,
    pipelines: list[Pipeline],
    *,
    show_webhook_url: bool = False,
) -> list[dict[str, Any]]:
    """`show_webhook_url`: the caller may edit pipelines (Buildkite shows the URL only then)."""
    creators = await users.get_many(
        session, {p.created_by_id for p in pipelines if p.created_by_id is not None}
    )
    counts = await build_repository.counts_for_pipelines(session, [p.id for p in pipelines])
    for pipeline in pipelines:
        configuration = pipeline.configuration
        if len(configuration) >= offload.LARGE_TEXT and configuration not in _large_rest_steps:
            # Parsed in a process: a pipeline of thousands of steps takes seconds.
            _large_rest_steps[configuration] = await offload.in_process(
                _rest_steps_of, configuration
            )
            while len(_large_rest_steps) > LARGE_CACHED:
                _large_rest_steps.pop(next(iter(_large_rest_steps)))
    return [
        pipeline_json(
            urls,
            org_slug,
            pipeline,
            creator=creators.get(pipeline.created_by_id) if pipeline.created_by_id else None,
            counts=counts.get(pipeline.id, build_repository.PipelineCounts()),
            show_webhook_url=show_webhook_url,
        )
        for pipeline in pipelines
    ]
