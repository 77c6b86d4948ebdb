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


def test_pipelines_made_before_badge_keys_get_one_each(database_url: str) -> None:
    """Migration 0010 gives every existing pipeline its own random badge key."""
    import asyncio
    import re
    import uuid
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from kiteline.server.kit.db import create_engine

    config = alembic_config(database_url)
    command.upgrade(config, "0009")
    organizations = sa.table(
        "organizations",
        sa.column("id", sa.Uuid()),
        sa.column("slug", sa.String()),
        sa.column("name", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    pipelines = sa.table(
        "pipelines",
        *(sa.column(name, sa.Uuid()) for name in ("id", "organization_id")),
        *(
            sa.column(name, sa.String())
            for name in (
                "slug",
                "name",
                "repository",
                "default_branch",
                "configuration",
                "visibility",
            )
        ),
        *(sa.column(name, sa.JSON()) for name in ("env", "settings")),
        sa.column("last_build_number", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    organization_id = uuid.uuid4()

    async def run(statement: sa.Executable) -> list[sa.Row[object]]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(statement)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    asyncio.run(
        run(
            organizations.insert().values(id=organization_id, slug="acme", name="A", created_at=now)
        )
    )
    for slug in ("one", "two"):
        asyncio.run(
            run(
                pipelines.insert().values(
                    id=uuid.uuid4(),
                    organization_id=organization_id,
                    slug=slug,
                    name=slug,
                    repository="",
                    default_branch="main",
                    configuration="steps: []\n",
                    visibility="private",
                    env={},
                    settings={},
                    last_build_number=0,
                    created_at=now,
                )
            )
        )
    command.upgrade(config, "head")
    keys = asyncio.run(run(sa.text("SELECT badge_key FROM pipelines")))
    assert len(keys) == 2
    assert all(re.fullmatch("[0-9a-f]{50}", key) for (key,) in keys)
    assert keys[0] != keys[1]


def test_the_head_read_from_file_names_is_alembics_head(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    from kiteline.server.kit.migrate import head_revision

    assert ScriptDirectory.from_config(alembic_config(database_url)).get_heads() == [
        head_revision()
    ]


def test_a_start_at_head_leaves_alembic_unloaded(database_url: str) -> None:
    """A server (re)started on a schema already at head reads one row and never imports Alembic."""
    command.upgrade(alembic_config(database_url), "head")
    assert (
        _alembic_loaded_after(
            "import asyncio\n"
            "from kiteline.server.kit.db import create_engine\n"
            "from kiteline.server.kit.migrate import upgrade\n"
            "async def main():\n"
            "    engine = create_engine(sys.argv[1])\n"
            "    await upgrade(engine)\n"
            "    await engine.dispose()\n"
            "asyncio.run(main())\n",
            database_url,
        )
        == []
    )


def test_a_forked_child_migrates_a_new_database_for_the_server(database_url: str) -> None:
    """`kiteline server` and `kiteline up` migrate in a forked child: the database reaches head
    and the serving process has still not imported Alembic."""
    from kiteline.server.kit.migrate import head_revision
    from tests.support.run_async import run_async

    assert (
        _alembic_loaded_after(
            "from kiteline.server.kit.migrate import upgrade_in_child\n"
            "upgrade_in_child(sys.argv[1])\n",
            database_url,
        )
        == []
    )
    assert run_async(lambda: _versions(database_url)) == [head_revision()]


async def _versions(database_url: str) -> list[str]:
    from sqlalchemy import text

    from kiteline.server.kit.db import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return list(rows.scalars())
    finally:
        await engine.dispose()


def _alembic_loaded_after(code: str, database_url: str) -> list[str]:
    """The Alembic and Mako modules a fresh interpreter holds after running `code` (with the
    database's URL as `sys.argv[1]`)."""
    import ast
    import subprocess
    import sys

    report = "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}{report}\n", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    names: list[str] = ast.literal_eval(done.stdout)
    return names
