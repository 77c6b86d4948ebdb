"""How much a query costs and how deep it goes, counted as Buildkite counts them.

Objects (and interfaces and unions) cost 1, scalars and enums 0. In a connection, `edges`
costs 1 and everything inside each edge is multiplied by the page size: `first` or `last`,
capped at the connection's largest page, and that largest page (500) when neither is given.
So `organization { pipelines(first: 500) { edges { node { slug } } } }` costs 1 + 1 + 1 + 500.
Where a selection depends on the type (`... on JobTypeCommand`), the dearest type counts.

The *requested* complexity is that count made before running the query, the most it could
return; the *actual* complexity counts what it did return (10 pipelines: 1 + 1 + 1 + 10).
Introspection (`__schema`, `__type`) costs nothing and adds no depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.utilities import value_from_ast_untyped

DEFAULT_PAGE_SIZE = 500
#: Connections whose pages may be larger than DEFAULT_PAGE_SIZE, by (type, field).
LARGER_PAGES: Mapping[tuple[str, str], int] = {("Build", "metaData"): 10_000}


@dataclass(frozen=True)
class Weight:
    requested: int
    depth: int


#: One response key's fields (several when fragments select it again) and their definition.
Collected = dict[str, tuple[list[FieldNode], GraphQLField, str]]
#: A selection's object-valued fields by response key, each with its own selection's plan.
_Plan = list[tuple[str, "_Plan"]]


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        defaults = {
            definition.variable.name.value: value_from_ast_untyped(definition.default_value)
            for definition in operation.variable_definitions or ()
            if definition.default_value is not None
        }
        self.variables = {**defaults, **variables}

    # -- selections ------------------------------------------------------------------------

    def _value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode | BooleanValueNode):
            return value_from_ast_untyped(node)
        return None

    def _included(self, node: SelectionNode) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next((a for a in directive.arguments or () if a.name.value == "if"), None)
            value = bool(self._value(condition.value)) if condition is not None else False
            if value == (name == "skip"):
                return False
        return True

    def _applies(self, condition: GraphQLNamedType, runtime: GraphQLObjectType | None) -> bool:
        if runtime is None or condition is runtime:
            return True
        if isinstance(condition, GraphQLInterfaceType | GraphQLUnionType):
            return self.schema.is_sub_type(condition, runtime)
        return False

    def collect(
        self,
        selections: Iterable[SelectionNode],
        scope: GraphQLNamedType,
        runtime: GraphQLObjectType | None,
        into: Collected | None = None,
    ) -> Collected:
        """The fields selected on `scope` for objects of type `runtime` (None: any type)."""
        collected: Collected = {} if into is None else into
        for selection in selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                name = selection.name.value
                fields = getattr(scope, "fields", {})
                if name.startswith("__") or name not in fields:
                    continue
                key = selection.alias.value if selection.alias else name
                if key in collected:
                    collected[key][0].append(selection)
                else:
                    collected[key] = ([selection], fields[name], scope.name)
                continue
            if isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                condition_name: str | None = fragment.type_condition.name.value
                sub_selections = fragment.selection_set.selections
            else:
                assert isinstance(selection, InlineFragmentNode)
                condition_name = (
                    selection.type_condition.name.value if selection.type_condition else None
                )
                sub_selections = selection.selection_set.selections
            condition = self.schema.get_type(condition_name) if condition_name else scope
            if condition is not None and self._applies(condition, runtime):
                self.collect(sub_selections, condition, runtime, collected)
        return collected

    @staticmethod
    def _children(nodes: Sequence[FieldNode]) -> list[SelectionNode]:
        return [
            selection
            for node in nodes
            if node.selection_set is not None
            for selection in node.selection_set.selections
        ]

    def _runtime_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType | None]:
        if is_abstract_type(named):
            return list(self.schema.get_possible_types(named))
        return [named] if isinstance(named, GraphQLObjectType) else [None]

    # -- requested complexity ------------------------------------------------------------

    def _page_size(self, node: FieldNode, parent: str) -> int:
        largest = LARGER_PAGES.get((parent, node.name.value), DEFAULT_PAGE_SIZE)
        sizes = [
            self._value(argument.value)
            for argument in node.arguments or ()
            if argument.name.value in ("first", "last")
        ]
        given = [size for size in sizes if isinstance(size, int) and size >= 0]
        return min([*given, largest]) if given else largest

    def weigh_selections(
        self, selections: Sequence[SelectionNode], scope: GraphQLNamedType
    ) -> Weight:
        """The dearest cost over the types an object here may have, and the deepest depth."""
        cost, depth = 0, 0
        for runtime in self._runtime_types(scope):
            collected = self.collect(selections, scope, runtime)
            weights = [
                self.weigh_field(nodes, definition, parent)
                for nodes, definition, parent in collected.values()
            ]
            cost = max(cost, sum(weight.requested for weight in weights))
            depth = max([depth, *(weight.depth for weight in weights)])
        return Weight(cost, depth)

    def weigh_field(self, nodes: list[FieldNode], definition: GraphQLField, parent: str) -> Weight:
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return Weight(0, 1)
        children = self._children(nodes)
        if not _is_connection(named):
            inner = self.weigh_selections(children, named)
            return Weight(1 + inner.requested, 1 + inner.depth)
        size = self._page_size(nodes[0], parent)
        cost, depth = 1, 1
        for sub_nodes, sub_definition, sub_parent in self.collect(children, named, None).values():
            if sub_nodes[0].name.value == "edges":
                edge = get_named_type(sub_definition.type)
                inner = self.weigh_selections(self._children(sub_nodes), edge)
                cost += 1 + size * inner.requested
                depth = max(depth, 2 + inner.depth)
            else:
                weight = self.weigh_field(sub_nodes, sub_definition, sub_parent)
                cost += weight.requested
                depth = max(depth, 1 + weight.depth)
        return Weight(cost, depth)

    # -- actual complexity ---------------------------------------------------------------

    def plan(self, selections: Sequence[SelectionNode], scope: GraphQLNamedType) -> _Plan:
        """The object-valued fields selected here, each with the plan of its own selections:
        made once from the document, then followed through every returned item."""
        planned: _Plan = []
        for key, (nodes, definition, _) in self.collect(selections, scope, None).items():
            named = get_named_type(definition.type)
            if not is_leaf_type(named):
                planned.append((key, self.plan(self._children(nodes), named)))
        return planned


def _count(plan: _Plan, data: Any) -> int:
    """1 for each planned key present in `data`, plus what its object (or each object of
    its list) counts; an object whose plan is empty counts nothing more."""
    if not isinstance(data, dict):
        return 0
    total = 0
    for key, children in plan:
        if key not in data:
            continue
        total += 1
        if not children:
            continue
        value = data[key]
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    total += _count(children, item)
        elif isinstance(value, dict):
            total += _count(children, value)
    return total


def _is_connection(named: GraphQLNamedType) -> bool:
    return (
        isinstance(named, GraphQLObjectType)
        and named.name.endswith("Connection")
        and "edges" in named.fields
    )


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> GraphQLObjectType:
    root = (
        schema.mutation_type if operation.operation == OperationType.MUTATION else schema.query_type
    )
    assert root is not None
    return root


def weigh(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
) -> Weight:
    """The requested complexity and depth of `operation`, before it runs."""
    walker = _Walker(schema, document, operation, variables)
    return walker.weigh_selections(operation.selection_set.selections, _root(schema, operation))


def actual_complexity(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    data: Any,
) -> int:
    """The complexity of what `operation` returned (`data` of its result)."""
    walker = _Walker(schema, document, operation, variables)
    return _count(walker.plan(operation.selection_set.selections, _root(schema, operation)), data)
