"""Our import-linter contracts (scripts/import_contracts.py), run by the real `lint-imports` on a
small package. `domain_private`: a domain importing another's tables breaks it, its service
does not, a shared module may, and a listed exception that no longer exists is an error.
`acyclic_modules`: modules importing one another (at the top or in a function) break it,
unless one of the imports is listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _package(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = tmp_path / "shop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in {p.parent for p in (tmp_path / "shop").rglob("*.py")} | {tmp_path / "shop"}:
        (directory / "__init__.py").touch()


_TABLES = [
    "[importlinter:contract:tables]",
    "name = tables",
    "type = domain_private",
    "domains_package = shop",
    "private_modules =\n    models\n    rest",
    "shared = shop.registry",
]
_ACYCLIC = [
    "[importlinter:contract:acyclic]",
    "name = acyclic",
    "type = acyclic_modules",
    "package = shop",
]


def _lint(
    tmp_path: Path, ignore: list[str], contract: list[str] = _TABLES
) -> subprocess.CompletedProcess[str]:
    config = [
        "[importlinter]",
        "root_package = shop",
        "contract_types =\n    domain_private: scripts.import_contracts.DomainPrivateContract"
        "\n    acyclic_modules: scripts.import_contracts.AcyclicModulesContract",
        *contract,
    ]
    if ignore:
        config.append("ignore_imports =" + "".join(f"\n    {line}" for line in ignore))
    (tmp_path / ".importlinter").write_text("\n".join(config) + "\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


FILES = {
    "orders/models.py": "",
    "orders/service.py": "",
    "users/models.py": "",
    "registry.py": "import shop.orders.models\nimport shop.users.models\n",
    "users/service.py": "import shop.orders.service\nimport shop.users.models\n",
}


def test_another_domains_service_and_the_shared_registry_keep_it(tmp_path: Path) -> None:
    _package(tmp_path, FILES)
    result = _lint(tmp_path, [])
    assert result.returncode == 0, result.stdout
    assert "tables KEPT" in result.stdout


def test_another_domains_tables_break_it_unless_listed(tmp_path: Path) -> None:
    _package(tmp_path, FILES | {"users/rest.py": "from shop.orders import models\n"})
    broken = _lint(tmp_path, [])
    assert broken.returncode == 1
    assert "- shop.users.rest -> shop.orders.models (l.1)" in broken.stdout
    listed = _lint(tmp_path, ["shop.users.rest -> shop.orders.models"])
    assert listed.returncode == 0, listed.stdout


def test_a_listed_exception_that_is_gone_is_an_error(tmp_path: Path) -> None:
    _package(tmp_path, FILES)
    result = _lint(tmp_path, ["shop.users.rest -> shop.orders.models"])
    assert result.returncode != 0
    assert "shop.users.rest -> shop.orders.models" in result.stdout + result.stderr


def test_modules_importing_one_another_break_acyclic_unless_an_import_is_listed(
    tmp_path: Path,
) -> None:
    _package(tmp_path, FILES)
    kept = _lint(tmp_path, [], _ACYCLIC)
    assert kept.returncode == 0, kept.stdout
    assert "acyclic KEPT" in kept.stdout
    # users.service -> orders.service, and back from inside a function.
    cycle = "def later():\n    import shop.users.service\n"
    _package(tmp_path, {"orders/service.py": cycle})
    broken = _lint(tmp_path, [], _ACYCLIC)
    assert broken.returncode == 1
    assert "These 2 modules import one another:" in broken.stdout
    assert "- shop.orders.service -> shop.users.service (l.2)" in broken.stdout
    assert "- shop.users.service -> shop.orders.service (l.1)" in broken.stdout
    listed = _lint(tmp_path, ["shop.orders.service -> shop.users.service"], _ACYCLIC)
    assert listed.returncode == 0, listed.stdout
