"""`--data-dir` and `--database-url` work on every command, before or after its name."""

from __future__ import annotations

from pathlib import Path

from kiteline.cli import _command_name, hoist_global_options
from tests.support.processes import kiteline_env, run_kiteline


def test_global_options_move_in_front_of_the_command() -> None:
    args = ["admin", "create-org", "acme", "--data-dir", "d", "--database-url=sqlite:///x"]
    assert hoist_global_options(args) == [
        "--data-dir",
        "d",
        "--database-url=sqlite:///x",
        "admin",
        "create-org",
        "acme",
    ]
    assert hoist_global_options(["x", "--", "--data-dir", "d"]) == ["x", "--", "--data-dir", "d"]


def test_verbose_moves_in_front_of_the_command_too() -> None:
    assert hoist_global_options(["build", "list", "-v", "--json"]) == [
        "-v",
        "build",
        "list",
        "--json",
    ]
    assert _command_name(["--verbose", "--data-dir", "d", "run"]) == "run"


def test_command_name_skips_global_option_values() -> None:
    assert _command_name(["--data-dir", "agent", "server"]) == "server"
    assert _command_name(["--data-dir=d", "agent", "start"]) == "agent"
    assert _command_name([]) is None


def test_data_dir_after_the_command_is_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "elsewhere"
    completed = run_kiteline(
        "admin",
        "create-org",
        "acme",
        "--json",
        "--data-dir",
        str(data_dir),
        env=kiteline_env(tmp_path / "default"),
    )
    assert completed.returncode == 0, completed.stderr
    assert (data_dir / "kiteline.db").exists()
    assert not (tmp_path / "default" / "kiteline.db").exists()


def test_admin_errors_are_clear_and_exit_non_zero(tmp_path: Path) -> None:
    env = kiteline_env(tmp_path / "data")
    first = run_kiteline("admin", "create-org", "acme", "--json", env=env)
    assert first.returncode == 0
    again = run_kiteline("admin", "create-org", "acme", "--json", env=env)
    assert again.returncode == 1
    assert again.stdout == ""
    assert "slug has already been taken" in again.stderr
    bad_scope = run_kiteline(
        "admin", "create-token", "--user", "x@y.z", "--scopes", "read_builds,fly", env=env
    )
    assert bad_scope.returncode == 1
    assert "unknown scope(s): fly" in bad_scope.stderr
