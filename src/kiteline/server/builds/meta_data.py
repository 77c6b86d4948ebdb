"""Writing a build's meta-data (the REST and agent API `meta-data set`, a block step's fields)."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.server.builds.models import Build, BuildMetaData
from kiteline.server.kit import limits
from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.kit.text import check_plain


async def set_meta_data(session: AsyncSession, build_id: uuid.UUID, items: dict[str, str]) -> None:
    """Set keys on a build (all or nothing); keys and values must not be blank."""
    limits.check_meta_data(items)
    for key, value in items.items():
        if not key.strip():
            raise ValidationFailed.field("key", "can't be blank")
        check_plain("key", key)
        if not str(value).strip():
            raise ValidationFailed.field("value", f"can't be blank (key {key!r})")
    # Build JSON shows the meta-data: a new build revision says a cached rendering is stale.
    # The build row first, as every writer locks a build before what hangs off it.
    await session.execute(
        update(Build)
        .where(Build.id == build_id)
        .values(revision=Build.revision + 1)
        .execution_options(synchronize_session=False)
    )
    for key, value in items.items():
        row = await session.get(BuildMetaData, (build_id, key))
        if row is None:
            session.add(BuildMetaData(build_id=build_id, key=key, value=str(value)))
        else:
            row.value = str(value)
    await session.flush()
