"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic import command

from kiteline.server.kit.migrate import alembic_config


def test_migrations_match_the_models(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.check(config)  # raises when the models need a migration the tree doesn't have


def test_migrations_downgrade_to_nothing_and_up_again(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
