"""An import-linter contract type for DESIGN.md's domain rule: another domain is reached through
its service, repository or shapes, never through its tables (`models`) or its routes (`rest`).

import-linter's built-in contracts name fixed modules; this one applies to every domain package
under `domains_package` at once: a module in domain A importing `B.models` or `B.rest` (B ≠ A)
breaks it, unless the importer is one of the `shared` modules (the table registry, the app that
mounts every router) or the import is listed in `ignore_imports`. Listed imports that no longer
exist are errors, so the exceptions list can only shrink.
"""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


class DomainPrivateContract(Contract):
    type_name = "domain_private"

    domains_package = fields.StringField()
    private_modules = fields.ListField(subfield=fields.StringField())
    shared = fields.ListField(subfield=fields.StringField(), required=False, default=[])
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=contract_utils.AlertLevel.ERROR,
        )
        root = str(self.domains_package)
        depth = root.count(".") + 1
        private = set(self.private_modules)  # type: ignore[arg-type]
        shared = tuple(str(name) for name in self.shared)  # type: ignore[attr-defined]
        illegal: list[dict[str, Any]] = []
        for imported in sorted(graph.modules):
            parts = imported.split(".")
            if not imported.startswith(root + ".") or len(parts) <= depth + 1:
                continue
            domain, kind = parts[depth], parts[depth + 1]
            if kind not in private:
                continue
            for importer in sorted(graph.find_modules_that_directly_import(imported)):
                if not importer.startswith(root + "."):
                    continue
                if importer.split(".")[depth] == domain or _within(importer, shared):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = [detail["line_number"] for detail in details]
                illegal.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(
            kept=not illegal,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"illegal": illegal},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            "A domain reaches another through its service, repository or shapes:", bold=False
        )
        output.new_line()
        for link in check.metadata["illegal"]:
            lines = ", ".join(map(str, link["lines"]))
            output.print_error(
                f"- {link['importer']} -> {link['imported']} (l.{lines})", bold=False
            )
        output.new_line()


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)
