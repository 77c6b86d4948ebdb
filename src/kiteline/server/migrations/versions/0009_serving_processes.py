"""serving_processes: the processes serving the agent API and their signs of life

The lost-agent sweep counts an agent's silence only from the latest (re)start of a process
serving the agent API, and not at all while none serves: a server's own downtime is not its
agents' silence, wherever the sweep runs.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "serving_processes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("serving_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alive_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_processes")),
    )
    op.create_index(
        op.f("ix_serving_processes_alive_at"), "serving_processes", ["alive_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_serving_processes_alive_at"), table_name="serving_processes")
    op.drop_table("serving_processes")
