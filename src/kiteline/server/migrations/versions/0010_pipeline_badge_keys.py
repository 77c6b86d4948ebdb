"""pipelines.badge_key: the unguessable name of each pipeline's build status badge

`badge_url` was the SHA-1 of the pipeline's id, which the API hands out: anyone who saw an id
could compute it. Each pipeline now gets a random key, and the badge is served at
`/badges/<key>.svg`. Existing pipelines get theirs here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PIPELINES = sa.table("pipelines", sa.column("id", sa.Uuid()), sa.column("badge_key", sa.String()))


def upgrade() -> None:
    # Added without rebuilding the table (SQLite's batch rebuild would drop it, and with
    # foreign keys on, the drop would delete its builds): nullable, then filled.
    op.add_column("pipelines", sa.Column("badge_key", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    for (pipeline_id,) in connection.execute(sa.select(_PIPELINES.c.id)).all():
        connection.execute(
            _PIPELINES.update()
            .where(_PIPELINES.c.id == pipeline_id)
            .values(badge_key=secrets.token_hex(25))
        )
    op.create_index(op.f("ix_pipelines_badge_key"), "pipelines", ["badge_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_pipelines_badge_key"), table_name="pipelines")
    # Not a batch: its rebuild of the table would cascade to the builds (see upgrade).
    op.drop_column("pipelines", "badge_key")
