"""Pipeline uploads: parse, apply to the build once per client uuid, remember the outcome."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kiteline.pipeline import PipelineError, parse_pipeline
from kiteline.pipeline.document import load_document
from kiteline.server.builds import service as builds
from kiteline.server.jobs.service import Job
from kiteline.server.kit import limits
from kiteline.server.kit.errors import NotFound, Unprocessable
from kiteline.server.pipeline_uploads.models import PipelineUpload
from kiteline.server.pipelines.service import step_name_problem


async def upload(
    session: AsyncSession, *, job: Job, upload_id: uuid.UUID, pipeline: Any, replace: bool
) -> PipelineUpload:
    """Apply the uploaded pipeline; a second upload with the same uuid changes nothing."""
    existing = await session.get(PipelineUpload, upload_id)
    if existing is not None:
        if existing.job_id != job.id:
            raise Unprocessable("This upload uuid belongs to another job")
        return existing
    try:
        if isinstance(pipeline, str | bytes):
            pipeline = load_document(pipeline, limits=limits.current().pipeline)
        definition = parse_pipeline(pipeline)
    except PipelineError as error:
        raise Unprocessable(f"The uploaded pipeline is invalid: {error}") from error
    too_many = limits.steps_over_limit(definition.step_count)
    if too_many is not None:
        raise Unprocessable(f"The uploaded pipeline is too large: {too_many}")
    if (problem := step_name_problem(definition)) is not None:
        raise Unprocessable(f"The uploaded pipeline is invalid: {problem}")
    await builds.apply_upload(session, job=job, definition=definition, replace=replace)
    record = PipelineUpload(id=upload_id, job_id=job.id, build_id=job.build_id, state="applied")
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, *, job: Job, upload_id: uuid.UUID) -> PipelineUpload:
    record = await session.get(PipelineUpload, upload_id)
    if record is None or record.job_id != job.id:
        raise NotFound.of("pipeline upload")
    return record
