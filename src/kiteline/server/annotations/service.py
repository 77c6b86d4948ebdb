"""Annotations: one per context per build (or per job), replaced or appended to."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.annotations.models import Annotation
from kiteline.server.kit.db import execute_core, utcnow
from kiteline.server.kit.errors import NotFound, ValidationFailed
from kiteline.server.kit.keyset import Ordering, Slice, Window, counts_per_parent, pages_per_parent
from kiteline.server.kit.text import check_plain

STYLES = ("success", "info", "warning", "error", "default")
SCOPES = ("build", "job")
MAX_BODY_BYTES = 1024 * 1024


async def annotate(
    session: AsyncSession,
    *,
    build_id: uuid.UUID,
    body: str,
    context: str | None = None,
    style: str | None = None,
    priority: int | None = None,
    append: bool = False,
    scope: str = "build",
    job_id: uuid.UUID | None = None,
) -> Annotation:
    """Create the context's annotation, or replace (or append to) its body and style."""
    context = (context or "").strip() or "default"
    check_plain("context", context)
    if style is not None and style not in STYLES:
        raise ValidationFailed.field("style", f"must be one of {', '.join(STYLES)}")
    if priority is not None and not 1 <= priority <= 10:
        raise ValidationFailed.field("priority", "must be between 1 and 10")
    if scope not in SCOPES:
        raise ValidationFailed.field("scope", f"must be one of {', '.join(SCOPES)}")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise ValidationFailed.field("body", "is too long (maximum is 1 MiB)")
    existing = await find(session, build_id=build_id, context=context, scope=scope, job_id=job_id)
    if existing is None:
        if not body:
            raise ValidationFailed.field("body", "can't be blank")
        annotation = Annotation(
            build_id=build_id,
            job_id=job_id if scope == "job" else None,
            scope=scope,
            context=context,
            style=style or "default",
            priority=priority or 3,
            body=body,
        )
        session.add(annotation)
        await session.flush()
        return annotation
    existing.body = existing.body + body if append else (body or existing.body)
    existing.style = style or existing.style
    existing.priority = priority or existing.priority
    existing.updated_at = utcnow()
    return existing


async def find(
    session: AsyncSession,
    *,
    build_id: uuid.UUID,
    context: str,
    scope: str = "build",
    job_id: uuid.UUID | None = None,
) -> Annotation | None:
    query = select(Annotation).where(
        Annotation.build_id == build_id, Annotation.context == context, Annotation.scope == scope
    )
    if scope == "job":
        query = query.where(Annotation.job_id == job_id)
    return await session.scalar(query)


#: A build's annotations as its page and REST list them: highest priority first, then oldest.
_BUILD_ORDER = (Annotation.priority.desc(), Annotation.created_at, Annotation.context)


async def list_for_build(
    session: AsyncSession, build_id: uuid.UUID, *, scope: str = "build"
) -> list[Annotation]:
    query = select(Annotation).where(Annotation.build_id == build_id)
    if scope != "all":
        query = query.where(Annotation.scope == scope)
    return list(await session.scalars(query.order_by(*_BUILD_ORDER)))


class ShownAnnotation(NamedTuple):
    """An annotation's columns as the build page shows it, read without the ORM."""

    id: uuid.UUID
    context: str
    style: str
    body: str


_SHOWN = (
    select(Annotation.id, Annotation.context, Annotation.style, Annotation.body)
    .where(Annotation.build_id == bindparam("build_id"))
    .order_by(*_BUILD_ORDER)
)


async def shown_for_build(session: AsyncSession, build_id: uuid.UUID) -> list[ShownAnnotation]:
    """All the build's annotations (both scopes) in `list_for_build`'s order, as the build
    page shows them: one prepared Core statement (a page's live block reads them each time)."""
    rows = await execute_core(session, _SHOWN, {"build_id": build_id})
    return [ShownAnnotation._make(row) for row in rows]


async def remove(
    session: AsyncSession,
    *,
    build_id: uuid.UUID,
    id_or_context: str,
    scope: str = "build",
    job_id: uuid.UUID | None = None,
) -> None:
    """Delete by uuid (REST reference) or by context (the seed and the agent)."""
    annotation = None
    try:
        annotation_id = uuid.UUID(id_or_context)
    except ValueError:
        annotation_id = None
    if annotation_id is not None:
        found = await session.get(Annotation, annotation_id)
        annotation = found if found is not None and found.build_id == build_id else None
    if annotation is None:
        annotation = await find(
            session, build_id=build_id, context=id_or_context, scope=scope, job_id=job_id
        )
    if annotation is None:
        raise NotFound.of("annotation")
    await session.delete(annotation)


ANNOTATION_ORDERINGS: dict[str, Ordering] = {
    "recently_created": ((Annotation.created_at, True), (Annotation.id, True)),
    "priority_recently_created": (
        (Annotation.priority, True),
        (Annotation.created_at, True),
        (Annotation.id, True),
    ),
}


def _annotation_conditions(styles: Sequence[str], scopes: Sequence[str]) -> list[Any]:
    conditions: list[Any] = []
    if styles:
        conditions.append(Annotation.style.in_(styles))
    if scopes:
        conditions.append(Annotation.scope.in_(scopes))
    return conditions


async def pages_for_builds(
    session: AsyncSession,
    build_ids: Sequence[uuid.UUID],
    *,
    styles: Sequence[str] = (),
    scopes: Sequence[str] = (),
    order: str,
    window: Window,
) -> dict[uuid.UUID, Slice[Annotation]]:
    """A page of each build's annotations (`order` is an ANNOTATION_ORDERINGS key)."""
    return await pages_per_parent(
        session,
        Annotation,
        parent=Annotation.build_id,
        parent_ids=build_ids,
        where=_annotation_conditions(styles, scopes),
        ordering=ANNOTATION_ORDERINGS[order],
        window=window,
    )


async def counts_for_builds(
    session: AsyncSession,
    build_ids: Sequence[uuid.UUID],
    *,
    styles: Sequence[str] = (),
    scopes: Sequence[str] = (),
) -> dict[uuid.UUID, int]:
    return await counts_per_parent(
        session,
        parent=Annotation.build_id,
        parent_ids=build_ids,
        where=_annotation_conditions(styles, scopes),
    )


async def get_many(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Annotation]:
    if not ids:
        return {}
    rows = await session.scalars(select(Annotation).where(Annotation.id.in_(ids)))
    return {row.id: row for row in rows}
