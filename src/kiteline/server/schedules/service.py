"""Pipeline schedules: their rules (cron lines with `@daily`-style names and a time zone), and
firing the ones that are due, one build per due time however many workers look at once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds import service as builds
from kiteline.server.kit.db import get_or_not_found
from kiteline.server.kit.errors import KitelineError, ValidationFailed
from kiteline.server.organizations import service as organizations
from kiteline.server.pipelines import service as pipelines
from kiteline.server.pipelines.service import Pipeline
from kiteline.server.schedules.models import PipelineSchedule

#: Buildkite's named cron lines.
NAMED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: How many due schedules one sweep fires at most (the next sweep takes the rest).
BATCH = 50


def parse_cronline(cronline: str) -> tuple[str, ZoneInfo]:
    """(the five-field expression, its time zone) of `0 9 * * 1-5 Europe/Berlin`,
    `@daily`, `@hourly America/New_York`…; 422 naming `cronline` when it is not one."""
    words = cronline.split()
    if not words:
        raise ValidationFailed.field("cronline", "can't be blank")
    zone: ZoneInfo = ZoneInfo("UTC")
    if words[0].startswith("@"):
        expression, rest = NAMED.get(words[0].lower()), words[1:]
        if expression is None:
            raise ValidationFailed.field(
                "cronline", f"{words[0]!r} is not one of {', '.join(NAMED)}"
            )
    else:
        expression, rest = " ".join(words[:5]), words[5:]
        if len(words) < 5 or not croniter.is_valid(expression):
            raise ValidationFailed.field(
                "cronline",
                f"{cronline!r} is not a cron line: expected five fields (minute hour "
                "day-of-month month day-of-week) and an optional time zone, or @daily-style",
            )
    if len(rest) > 1:
        raise ValidationFailed.field("cronline", f"{' '.join(rest)!r} is not a time zone")
    if rest:
        try:
            zone = ZoneInfo(rest[0])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed.field(
                "cronline", f"{rest[0]!r} is not a time zone (e.g. Europe/Berlin, UTC)"
            ) from None
    return expression, zone


def next_after(cronline: str, moment: datetime) -> datetime:
    """The first due time strictly after `moment`, in UTC."""
    expression, zone = parse_cronline(cronline)
    following: datetime = croniter(expression, moment.astimezone(zone)).get_next(datetime)
    return following.astimezone(UTC)


def _env(value: Any) -> dict[str, str]:
    """GraphQL sends `env` as one string of KEY=value lines."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    env: dict[str, str] = {}
    for line in str(value).splitlines():
        if not line.strip():
            continue
        key, sep, item = line.partition("=")
        if not sep or not key.strip():
            raise ValidationFailed.field("env", f"{line!r} is not KEY=value")
        env[key.strip()] = item
    return env


EDITABLE = ("label", "cronline", "branch", "commit", "message", "env", "enabled")


async def create(
    session: AsyncSession,
    *,
    pipeline: Pipeline,
    created_by_id: uuid.UUID | None,
    now: datetime,
    fields: dict[str, Any],
) -> PipelineSchedule:
    schedule = PipelineSchedule(
        id=uuid.uuid4(),
        pipeline_id=pipeline.id,
        label="",
        cronline="",
        commit="HEAD",
        env={},
        enabled=True,
        created_by_id=created_by_id,
    )
    if not str(fields.get("cronline") or "").strip():
        raise ValidationFailed.field("cronline", "can't be blank")
    _apply(schedule, fields, now)
    session.add(schedule)
    await session.flush()
    return schedule


async def update(
    session: AsyncSession, schedule: PipelineSchedule, fields: dict[str, Any], *, now: datetime
) -> PipelineSchedule:
    _apply(schedule, fields, now)
    await session.flush()
    return schedule


def _apply(schedule: PipelineSchedule, fields: dict[str, Any], now: datetime) -> None:
    """Check every given field first, then set them: a refused change sets nothing."""
    changes = {key: value for key, value in fields.items() if key in EDITABLE}
    if "cronline" in changes:
        changes["cronline"] = str(changes["cronline"] or "").strip()
        parse_cronline(changes["cronline"])
    if "env" in changes:
        changes["env"] = _env(changes["env"])
    if "commit" in changes:
        changes["commit"] = str(changes["commit"] or "").strip() or "HEAD"
    if "branch" in changes:
        changes["branch"] = str(changes["branch"] or "").strip() or None
    if "label" in changes:
        changes["label"] = str(changes["label"] or "")
    for key, value in changes.items():
        setattr(schedule, key, value)
    if {"cronline", "enabled"} & changes.keys() or schedule.next_build_at is None:
        schedule.next_build_at = next_after(schedule.cronline, now) if schedule.enabled else None


async def delete(session: AsyncSession, schedule: PipelineSchedule) -> None:
    await session.delete(schedule)
    await session.flush()


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, PipelineSchedule]:
    if not ids:
        return {}
    rows = await session.scalars(select(PipelineSchedule).where(PipelineSchedule.id.in_(ids)))
    return {row.id: row for row in rows}


async def get(session: AsyncSession, schedule_id: uuid.UUID) -> PipelineSchedule:
    return await get_or_not_found(session, PipelineSchedule, schedule_id, "pipeline schedule")


async def for_pipelines(
    session: AsyncSession, pipeline_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PipelineSchedule]]:
    found: dict[uuid.UUID, list[PipelineSchedule]] = {id_: [] for id_ in pipeline_ids}
    rows = await session.scalars(
        select(PipelineSchedule)
        .where(PipelineSchedule.pipeline_id.in_(list(pipeline_ids)))
        .order_by(PipelineSchedule.created_at, PipelineSchedule.id)
    )
    for row in rows:
        found[row.pipeline_id].append(row)
    return found


async def due(session: AsyncSession, now: datetime) -> list[tuple[uuid.UUID, datetime]]:
    """(schedule, due time) of the enabled schedules whose time has come."""
    rows = await session.execute(
        select(PipelineSchedule.id, PipelineSchedule.next_build_at)
        .where(PipelineSchedule.enabled.is_(True), PipelineSchedule.next_build_at <= now)
        .order_by(PipelineSchedule.next_build_at)
        .limit(BATCH)
    )
    return [(row[0], row[1]) for row in rows if row[1] is not None]


async def fire(
    session: AsyncSession, schedule_id: uuid.UUID, *, due_at: datetime, now: datetime
) -> uuid.UUID | None:
    """Claim the due time and create its build; None when another worker claimed it first.

    The claim moves `next_build_at` from `due_at` to the first due time after `now` in one
    conditional UPDATE: of several workers, one changes the row and the others find it
    changed. Times missed while nothing ran collapse into this one build (no burst of
    catch-up builds)."""
    schedule = await get(session, schedule_id)
    following = next_after(schedule.cronline, now)
    claimed = await session.execute(
        sql_update(PipelineSchedule)
        .where(PipelineSchedule.id == schedule_id, PipelineSchedule.next_build_at == due_at)
        .values(next_build_at=following)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    await session.refresh(schedule)
    pipeline = await pipelines.get_by_id(session, schedule.pipeline_id)
    organization = await organizations.get(session, pipeline.organization_id)
    try:
        build = await builds.create(
            session,
            organization=organization,
            pipeline=pipeline,
            creator_id=schedule.created_by_id,
            new=builds.NewBuild(
                commit=schedule.commit or "HEAD",
                branch=schedule.branch or pipeline.default_branch,
                message=schedule.message or schedule.label or "Scheduled build",
                env=dict(schedule.env),
                source="schedule",
            ),
        )
    except KitelineError as error:
        schedule.failed_at = now
        schedule.failed_message = error.message
        return None
    schedule.failed_at = None
    schedule.failed_message = None
    return build.id
