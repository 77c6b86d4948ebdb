"""import-linter contract types of our own.

`domain_private`, DESIGN.md's domain rule: another domain is reached through
its service, repository or shapes, never through its tables (`models`) or its routes (`rest`).

import-linter's built-in contracts name fixed modules; this one applies to every domain package
under `domains_package` at once: a module in domain A importing `B.models` or `B.rest` (B ≠ A)
breaks it, unless the importer is one of the `shared` modules (the table registry, the app that
mounts every router) or the import is listed in `ignore_imports`. Listed imports that no longer
exist are errors, so the exceptions list can only shrink.

`acyclic_modules`: no import cycle among the modules under `package`, module by module (a
function-level import counts: it is still a cycle when it runs). Imports under
`if TYPE_CHECKING:` are in the graph too; the ones that would close a cycle are listed in
`ignore_imports`, under the same only-shrinks rule.
"""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


class _ListingContract(Contract):
    """A contract whose `ignore_imports` may only shrink (a listed import that is gone is an
    error), kept when `findings` finds nothing in the graph without the listed imports."""

    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def findings(self, graph: grimp.ImportGraph) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=contract_utils.AlertLevel.ERROR,
        )
        found = self.findings(graph)
        return ContractCheck(
            kept=not found,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"found": found},
        )


def _link(graph: grimp.ImportGraph, importer: str, imported: str) -> dict[str, Any]:
    details = graph.get_import_details(importer=importer, imported=imported)
    return {
        "importer": importer,
        "imported": imported,
        "lines": [detail["line_number"] for detail in details],
    }


def _print_links(links: list[dict[str, Any]]) -> None:
    for link in links:
        lines = ", ".join(map(str, link["lines"]))
        output.print_error(f"- {link['importer']} -> {link['imported']} (l.{lines})", bold=False)
    output.new_line()


class DomainPrivateContract(_ListingContract):
    type_name = "domain_private"

    domains_package = fields.StringField()
    private_modules = fields.ListField(subfield=fields.StringField())
    shared = fields.ListField(subfield=fields.StringField(), required=False, default=[])

    def findings(self, graph: grimp.ImportGraph) -> list[dict[str, Any]]:
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
                illegal.append(_link(graph, importer, imported))
        return illegal

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            "A domain reaches another through its service, repository or shapes:", bold=False
        )
        output.new_line()
        _print_links(check.metadata["found"])


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


class AcyclicModulesContract(_ListingContract):
    type_name = "acyclic_modules"

    package = fields.StringField()

    def findings(self, graph: grimp.ImportGraph) -> list[dict[str, Any]]:
        root = str(self.package)
        modules = sorted(m for m in graph.modules if _within(m, (root,)))
        edges = {
            module: sorted(
                imported
                for imported in graph.find_modules_directly_imported_by(module)
                if _within(imported, (root,))
            )
            for module in modules
        }
        cycles = []
        for group in _strongly_connected(modules, edges):
            members = set(group)
            links = [
                _link(graph, importer, imported)
                for importer in group
                for imported in edges[importer]
                if imported in members
            ]
            cycles.append({"modules": group, "links": links})
        return cycles

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["found"]:
            output.print_error(f"These {len(cycle['modules'])} modules import one another:")
            _print_links(cycle["links"])


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """The groups of two or more nodes (or one that reaches itself) that reach one another:
    Tarjan's algorithm, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            if position < len(successors):
                work.append((node, position + 1))
                successor = successors[position]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges.get(node, []):
                    groups.append(sorted(group))
    return groups
