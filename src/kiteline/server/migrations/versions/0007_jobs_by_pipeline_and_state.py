"""jobs indexed by pipeline and state: the live job counts shown with every pipeline

Every rendered build carries its pipeline with the pipeline's scheduled, running and waiting
job counts; with only `pipeline_id` indexed, counting read every job the pipeline ever ran.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_pipeline_state", "jobs", ["pipeline_id", "state"])
    op.drop_index("ix_jobs_pipeline_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_pipeline_id", "jobs", ["pipeline_id"])
    op.drop_index("ix_jobs_pipeline_state", table_name="jobs")
