"""the dispatch index in the queue's order (priority descending, then runnable_at, position,
id): an idle agent's ping reads its first candidates from it instead of sorting every runnable
job of its organization (decision 0046)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_dispatch")
        batch_op.create_index(
            "ix_jobs_dispatch",
            ["organization_id", "state", sa.text("priority DESC"), "runnable_at", "position", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_dispatch")
        batch_op.create_index(
            "ix_jobs_dispatch",
            ["organization_id", "state", "priority", "runnable_at"],
            unique=False,
        )
