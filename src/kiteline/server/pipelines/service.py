"""Pipelines: create, read, update, and the build-number counter."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import (
    BlockStep,
    GroupStep,
    PipelineError,
    SelectField,
    Step,
    TriggerStep,
    check_pipeline,
    from_legacy_steps,
    interpolate_pipeline,
)
from kiteline.pipeline import Pipeline as PipelineDefinition
from kiteline.pipeline.document import load_document
from kiteline.server.kit import collector, limits, offload, signatures
from kiteline.server.kit.db import get_or_not_found, utcnow
from kiteline.server.kit.errors import NotFound, Unprocessable, ValidationFailed
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.kit.text import check_plain, control_character_problem
from kiteline.server.kit.text_search import contains
from kiteline.server.pipelines import providers
from kiteline.server.pipelines.models import Pipeline


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "pipeline"


async def parse_configuration(
    configuration: str, *, env: Mapping[str, str] | None = None
) -> PipelineDefinition:
    """The pipeline's YAML, its steps and their dependencies checked whole, or 422 naming the
    step and the key that are wrong. With `env`, interpolated first (as a build does). The
    text's size, its aliases and its steps are held to the limits. A large text is decoded
    in a process and checked in a thread, never on the event loop."""
    pipeline_limits = limits.current().pipeline
    large = len(configuration) >= offload.LARGE_TEXT
    # A large document's objects: no full collection while they are made (kit/collector.py).
    with collector.Hold(engaged=large):
        try:
            document = await offload.off_loop_if_large(
                len(configuration), load_document, configuration, limits=pipeline_limits
            )
        except PipelineError as error:
            raise ValidationFailed.field("configuration", str(error)) from error
        if large:
            return await asyncio.to_thread(_checked, document, env)
    return _checked(document, env)


def _checked(document: Any, env: Mapping[str, str] | None) -> PipelineDefinition:
    try:
        if env is not None:
            document = interpolate_pipeline(document, env)
        definition = check_pipeline(document)
    except PipelineError as error:
        raise ValidationFailed.field("configuration", str(error)) from error
    too_many = limits.steps_over_limit(definition.step_count)
    if too_many is not None:
        raise ValidationFailed.field("configuration", too_many)
    if (problem := step_name_problem(definition)) is not None:
        raise ValidationFailed.field("configuration", problem)
    return definition


def step_name_problem(definition: PipelineDefinition) -> str | None:
    """The first step key, label or trigger branch holding a control character, named by
    where it is (`steps[1].steps[0].label must not contain …`), else None."""
    for field, value in _step_names(definition.steps, "steps"):
        if (problem := control_character_problem(value)) is not None:
            return f"{field} {problem}"
    return None


def _step_names(steps: Sequence[Step], prefix: str) -> Iterator[tuple[str, str]]:
    for index, step in enumerate(steps):
        at = f"{prefix}[{index}]"
        for name, value in (("key", step.key), ("label", step.label)):
            if value is not None:
                yield f"{at}.{name}", value
        if isinstance(step, GroupStep):
            yield from _step_names(step.steps, f"{at}.steps")
        elif isinstance(step, TriggerStep):
            if step.build.branch is not None:
                yield f"{at}.build.branch", step.build.branch
            for key in step.build.meta_data:
                yield f"{at}.build.meta_data", key
        elif isinstance(step, BlockStep):
            for number, block_field in enumerate(step.fields):
                yield f"{at}.fields[{number}].key", block_field.key
                if isinstance(block_field, SelectField):
                    for option in block_field.options:
                        yield f"{at}.fields[{number}].options.label", option.label


def configuration_from_steps(steps: Any) -> str:
    """Legacy `steps` (REST's visual-step array) become an equivalent YAML configuration."""
    import yaml

    if not isinstance(steps, list):
        raise ValidationFailed.field("steps", "must be an array of steps")
    try:
        definition = from_legacy_steps(steps)
    except PipelineError as error:
        raise ValidationFailed.field("steps", str(error)) from error
    return yaml.safe_dump({"steps": [step.raw for step in definition.steps]}, sort_keys=False)


async def create(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    name: str,
    configuration: str,
    created_by_id: uuid.UUID | None,
    slug: str | None = None,
    repository: str = "",
    description: str | None = None,
    default_branch: str | None = None,
    branch_configuration: str | None = None,
    env: dict[str, str] | None = None,
    visibility: str = "private",
    settings: dict[str, Any] | None = None,
) -> Pipeline:
    name = name.strip()
    if not name:
        raise ValidationFailed.field("name", "can't be blank")
    if not configuration.strip():
        raise ValidationFailed.field(
            "configuration",
            'Step configuration is missing, expected `steps: { yaml: "..." }`',
        )
    await parse_configuration(configuration)
    limits.check_env(env or {})
    _check_visibility(visibility)
    if slug is not None and not PIPELINE_SLUG.match(slug):
        raise ValidationFailed.field(
            "slug", "must be lowercase letters, digits, dashes and underscores (at most 100)"
        )
    settings = dict(settings or {})
    if "provider_settings" in settings:
        settings["provider_settings"] = providers.check_provider_settings(
            settings["provider_settings"] or {}
        )
    if "provider_id" in settings:
        settings["provider_id"] = providers.check_provider_id(settings["provider_id"])
    slug = slug or slugify(name)
    taken = await session.scalar(
        select(Pipeline.id).where(
            Pipeline.organization_id == organization_id, Pipeline.slug == slug
        )
    )
    if taken is not None:
        raise ValidationFailed.field("name", "has already been taken")
    check_plain("default_branch", default_branch)
    pipeline = Pipeline(
        organization_id=organization_id,
        slug=slug,
        name=name,
        configuration=configuration,
        repository=repository or "",
        description=description,
        default_branch=default_branch or "main",
        branch_configuration=branch_configuration,
        env=env or {},
        visibility=visibility,
        settings=settings,
        created_by_id=created_by_id,
    )
    session.add(pipeline)
    await session.flush()
    return pipeline


def named(organization_id: uuid.UUID, slug: str) -> ColumnElement[bool]:
    """The condition that finds an organization's pipeline by slug."""
    return and_(Pipeline.organization_id == organization_id, Pipeline.slug == slug)


# Statements of every request under a pipeline's path, built once.
_BY_SLUG = select(Pipeline).where(
    Pipeline.organization_id == bindparam("organization_id"), Pipeline.slug == bindparam("slug")
)
_BY_IDS = select(Pipeline).where(Pipeline.id.in_(bindparam("ids", expanding=True)))


async def get(session: AsyncSession, *, organization_id: uuid.UUID, slug: str) -> Pipeline:
    pipeline = await session.scalar(_BY_SLUG, {"organization_id": organization_id, "slug": slug})
    if pipeline is None:
        raise NotFound.of("pipeline")
    return pipeline


async def find_signed(
    session: AsyncSession, *, organization_id: uuid.UUID, slug: str
) -> Pipeline | None:
    """The pipeline by slug or None, signed for a kept GraphQL answer (kit/signatures.py)."""
    condition = named(organization_id, slug)
    pipeline = await session.scalar(select(Pipeline).where(condition))
    signatures.sign_lookup(session, Pipeline, condition, pipeline)
    return pipeline


async def get_by_badge_key(session: AsyncSession, key: str) -> Pipeline:
    """The pipeline whose badge is `/badges/<key>.svg` (any organization's: the key is the
    secret), or 404."""
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.badge_key == key))
    if pipeline is None:
        raise NotFound.of("badge")
    return pipeline


async def get_by_webhook_token(session: AsyncSession, token: str) -> Pipeline:
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.webhook_token == token))
    if pipeline is None:
        raise NotFound.of("pipeline")
    return pipeline


async def lock(session: AsyncSession, pipeline_id: uuid.UUID) -> None:
    """Hold the pipeline's row until the transaction ends (PostgreSQL; SQLite has one writer)."""
    await session.execute(select(Pipeline.id).where(Pipeline.id == pipeline_id).with_for_update())


async def get_by_id(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    return await get_or_not_found(session, Pipeline, pipeline_id, "pipeline")


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Pipeline]:
    if not ids:
        return {}
    rows = await session.scalars(_BY_IDS, {"ids": list(ids)})
    return {row.id: row for row in rows}


async def list_for_organization(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    offset: int,
    limit: int,
    name: str | None = None,
    repository: str | None = None,
) -> tuple[list[Pipeline], int]:
    """A page of the organization's pipelines by name; `name` and `repository` keep those
    containing the text, ignoring case (Buildkite's list filters)."""
    where = [Pipeline.organization_id == organization_id]
    if name:
        where.append(contains(Pipeline.name, name))
    if repository:
        where.append(contains(Pipeline.repository, repository))
    total = await session.scalar(select(func.count()).select_from(Pipeline).where(*where)) or 0
    rows = await session.scalars(
        select(Pipeline)
        .where(*where)
        .order_by(Pipeline.name, Pipeline.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


async def allocate_build_number(session: AsyncSession, pipeline_id: uuid.UUID) -> int:
    """Atomically take the next build number (row-locked on PostgreSQL, one writer on SQLite)."""
    number = await session.scalar(
        sql_update(Pipeline)
        .where(Pipeline.id == pipeline_id)
        .values(last_build_number=Pipeline.last_build_number + 1)
        .returning(Pipeline.last_build_number)
    )
    if number is None:
        raise NotFound.of("pipeline")
    return int(number)


#: Columns PATCH may set directly; everything else goes through `update`'s own rules.
UPDATABLE_COLUMNS = (
    "name",
    "repository",
    "description",
    "default_branch",
    "branch_configuration",
    "env",
    "visibility",
)
UPDATABLE_SETTINGS = (
    "skip_queued_branch_builds",
    "skip_queued_branch_builds_filter",
    "cancel_running_branch_builds",
    "cancel_running_branch_builds_filter",
    "allow_rebuilds",
    "provider_settings",
    "provider_id",
    "tags",
)


#: Fields a PATCH may set to null; for every other field null is refused, not stored.
NULLABLE = frozenset(
    {
        "description",
        "branch_configuration",
        "skip_queued_branch_builds_filter",
        "cancel_running_branch_builds_filter",
        "tags",
        "steps",
        "provider_id",
    }
)
VISIBILITIES = ("private", "public")
PIPELINE_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def _check_visibility(visibility: str) -> None:
    if visibility not in VISIBILITIES:
        raise ValidationFailed.field("visibility", f"must be one of {', '.join(VISIBILITIES)}")


async def update(session: AsyncSession, pipeline: Pipeline, changes: dict[str, Any]) -> Pipeline:
    """Apply a PATCH: a new `configuration` replaces the YAML; legacy `steps` need one too."""
    nulls = sorted(key for key, value in changes.items() if value is None and key not in NULLABLE)
    if nulls:
        raise ValidationFailed([{"field": key, "code": "can't be null"} for key in nulls])
    if "visibility" in changes:
        _check_visibility(changes["visibility"])
    if isinstance(changes.get("env"), dict):
        limits.check_env(changes["env"])
    if isinstance(changes.get("default_branch"), str):
        check_plain("default_branch", changes["default_branch"])
    if "steps" in changes and "configuration" not in changes:
        raise ValidationFailed.field(
            "steps", "can't be changed on a YAML pipeline; send `configuration` instead"
        )
    if "configuration" in changes:
        configuration = changes["configuration"]
        if not isinstance(configuration, str) or not configuration.strip():
            raise ValidationFailed.field("configuration", "can't be blank")
        await parse_configuration(configuration)
        pipeline.configuration = configuration
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name:
            raise ValidationFailed.field("name", "can't be blank")
        changes = {**changes, "name": name}
    for column in UPDATABLE_COLUMNS:
        if column in changes:
            setattr(pipeline, column, changes[column])
    if "provider_settings" in changes:
        changes = {
            **changes,
            "provider_settings": providers.check_provider_settings(
                changes["provider_settings"], pipeline.settings.get("provider_settings")
            ),
        }
    if "provider_id" in changes:
        changes = {**changes, "provider_id": providers.check_provider_id(changes["provider_id"])}
    settings = dict(pipeline.settings)
    settings.update({key: changes[key] for key in UPDATABLE_SETTINGS if key in changes})
    pipeline.settings = settings
    await session.flush()
    return pipeline


async def delete(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.delete(pipeline)
    await session.flush()


def archive(pipeline: Pipeline) -> None:
    if pipeline.archived_at is not None:
        raise Unprocessable("Pipeline could not be archived.")
    pipeline.archived_at = utcnow()


def unarchive(pipeline: Pipeline) -> None:
    if pipeline.archived_at is None:
        raise Unprocessable("Pipeline could not be unarchived.")
    pipeline.archived_at = None


@dataclass(frozen=True)
class PipelineFilter:
    """GraphQL's pipeline filters: `search` in the name, archived or not, creation time."""

    search: str | None = None
    archived: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def conditions(self) -> list[Any]:
        conditions: list[Any] = []
        if self.search:
            conditions.append(contains(Pipeline.name, self.search))
        if self.archived is not None:
            archived = Pipeline.archived_at.is_not(None)
            conditions.append(archived if self.archived else ~archived)
        if self.created_from is not None:
            conditions.append(Pipeline.created_at >= self.created_from)
        if self.created_to is not None:
            conditions.append(Pipeline.created_at < self.created_to)
        return conditions


PIPELINE_ORDERINGS: dict[str, Ordering] = {
    "recently_created": ((Pipeline.created_at, True), (Pipeline.id, True)),
    "name": ((Pipeline.name, False), (Pipeline.id, False)),
}


async def pages_for_organizations(
    session: AsyncSession,
    organization_ids: Sequence[uuid.UUID],
    *,
    where: PipelineFilter,
    order: str,
    window: Window,
) -> dict[uuid.UUID, Slice[Pipeline]]:
    """A page of each organization's pipelines (`order` is a PIPELINE_ORDERINGS key)."""
    return await pages_per_parent(
        session,
        Pipeline,
        parent=Pipeline.organization_id,
        parent_ids=organization_ids,
        where=where.conditions(),
        ordering=PIPELINE_ORDERINGS[order],
        window=window,
    )


async def counts_for_organizations(
    session: AsyncSession, organization_ids: Sequence[uuid.UUID], *, where: PipelineFilter
) -> dict[uuid.UUID, int]:
    return await counts_per_parent(
        session,
        parent=Pipeline.organization_id,
        parent_ids=organization_ids,
        where=where.conditions(),
    )
