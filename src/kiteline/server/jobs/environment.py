"""The environment a job runs with: pipeline < build < step < Buildkite's own variables."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.agents.service import Agent, Caller
from kiteline.server.builds import repository as build_repository
from kiteline.server.builds.repository import Build
from kiteline.server.jobs.models import Job
from kiteline.server.kit.urls import Urls
from kiteline.server.organizations.service import Organization
from kiteline.server.pipelines import providers
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.users.service import User


def _tag_variable(key: str) -> str:
    return "BUILDKITE_AGENT_META_DATA_" + re.sub(r"[^A-Z0-9_]", "_", key.upper())


def job_environment(
    *,
    job: Job,
    build: Build,
    pipeline: Pipeline,
    organization: Organization,
    agent: Agent | Caller | None,
    creator: User | None,
    urls: Urls,
) -> dict[str, str]:
    """What a job runs with, as Buildkite sets it (REST's `…/env`, GraphQL's `env`)."""
    timeout = str(job.timeout_in_minutes) if job.timeout_in_minutes else "false"
    author = build.author or {}
    standard = {
        "CI": "true",
        "BUILDKITE": "true",
        "BUILDKITE_JOB_ID": str(job.id),
        "BUILDKITE_BUILD_ID": str(build.id),
        "BUILDKITE_BUILD_NUMBER": str(build.number),
        "BUILDKITE_BUILD_URL": urls.build_web(organization.slug, pipeline.slug, build.number),
        "BUILDKITE_COMMAND": job.command or "",
        "BUILDKITE_COMMIT": build.commit,
        "BUILDKITE_BRANCH": build.branch,
        "BUILDKITE_TAG": build.tag or "",
        "BUILDKITE_MESSAGE": build.message or "",
        "BUILDKITE_REPO": pipeline.repository,
        "BUILDKITE_PIPELINE_PROVIDER": providers.provider_id(pipeline.repository, pipeline.settings)
        if pipeline.repository
        else "local",
        "BUILDKITE_PULL_REQUEST": str((build.pull_request or {}).get("id") or "false"),
        "BUILDKITE_PULL_REQUEST_BASE_BRANCH": str((build.pull_request or {}).get("base") or ""),
        "BUILDKITE_PULL_REQUEST_REPO": str((build.pull_request or {}).get("repository") or ""),
        "BUILDKITE_PULL_REQUEST_LABELS": ",".join(
            str(label) for label in (build.pull_request or {}).get("labels") or []
        ),
        "BUILDKITE_PULL_REQUEST_DRAFT": "true"
        if (build.pull_request or {}).get("draft")
        else "false",
        "BUILDKITE_LABEL": job.label or "",
        "BUILDKITE_STEP_ID": str(job.step_id),
        "BUILDKITE_STEP_KEY": job.step_key or "",
        "BUILDKITE_PIPELINE_ID": str(pipeline.id),
        "BUILDKITE_PIPELINE_SLUG": pipeline.slug,
        "BUILDKITE_PIPELINE_NAME": pipeline.name,
        "BUILDKITE_PIPELINE_DEFAULT_BRANCH": pipeline.default_branch,
        "BUILDKITE_ORGANIZATION_ID": str(organization.id),
        "BUILDKITE_ORGANIZATION_SLUG": organization.slug,
        "BUILDKITE_AGENT_ID": str(agent.id) if agent else "",
        "BUILDKITE_AGENT_NAME": agent.name if agent else "",
        "BUILDKITE_ARTIFACT_PATHS": job.artifact_paths or "",
        "BUILDKITE_TIMEOUT": timeout,
        "BUILDKITE_RETRY_COUNT": str(job.retries_count),
        "BUILDKITE_SOURCE": build.source,
        "BUILDKITE_BUILD_CREATOR": creator.name if creator else "",
        "BUILDKITE_BUILD_CREATOR_EMAIL": creator.email if creator else "",
        "BUILDKITE_BUILD_AUTHOR": str(author.get("name") or ""),
        "BUILDKITE_BUILD_AUTHOR_EMAIL": str(author.get("email") or ""),
        "BUILDKITE_REBUILT_FROM_BUILD_ID": str(build.rebuilt_from_id or ""),
        "BUILDKITE_CLEAN_CHECKOUT": "true" if build.clean_checkout else "false",
        "BUILDKITE_COMPUTE_TYPE": "self-hosted",
    }
    if not pipeline.repository:
        standard["BUILDKITE_SKIP_CHECKOUT"] = "true"
    for tag in agent.meta_data if agent else []:
        key, _, value = tag.partition("=")
        standard[_tag_variable(key)] = value
    return {**pipeline.env, **build.env, **job.env, **standard}


async def environment_for(
    session: AsyncSession, job: Job, agent: Agent | Caller | None, urls: Urls
) -> dict[str, str]:
    """Everything `job_environment` needs, looked up through the owning services."""
    build, pipeline, organization, creator = await build_repository.with_surroundings(
        session, job.build_id
    )
    return job_environment(
        job=job,
        build=build,
        pipeline=pipeline,
        organization=organization,
        agent=agent,
        creator=creator,
        urls=urls,
    )
