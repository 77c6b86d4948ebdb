"""How graphql-core runs Kiteline's schema: strawberry's execution context, with a shorter
path for the leaf fields that make up most of a large answer.

A dashboard query completes some 10,000 scalar and enum fields whose resolvers only read
their source (`shortcuts.plain_resolver`). For each, graphql-core builds a path and an info
object, checks for awaitables and walks its completion rules. Here such a field is resolved
and coerced directly; anything out of the ordinary (an exception, a null where none is
allowed, an awaitable, a value its type refuses) is handed to graphql-core's own completion,
so answers and errors are exactly what graphql-core would produce.

Object-valued fields read from their source (a connection's `edges`, an edge's `node`) and
lists of objects are completed the same way: the object's type found from its class (for a
union or interface, `shortcuts.runtime_types`; strawberry's `is_type_of` asked without an
info), its sub-selection collected by graphql-core (memoized) and executed here. An item or
value this can't place (an unknown class, a refused `is_type_of`, a null where none is
allowed, an awaitable, deferred fragments, `@stream`) goes through graphql-core's completion
instead; errors raised below are handled at the same paths and types as there.

Mirrors `Executor.execute_fields`, the end of `Executor.execute_field`, `complete_value`
for objects and `complete_iterable_value` (graphql-core 3.3).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    Undefined,
    UndefinedType,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import gather_with_cancel, to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from kiteline.server.graphql.fast.shortcuts import plain_resolver
from kiteline.server.graphql.fast.steps import (
    PLAIN_VALUES,
    SLOW,
    UNCHANGED,
    FieldStep,
    LeafStep,
    ObjectStep,
    Plan,
    runtime_type_of,
)


class KitelineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed by the identity of graphql-core's memoized field sets, kept alive with them.
        self._plans: dict[tuple[str, int], tuple[GroupedFieldSet, Plan]] = {}
        #: The plans of the objects completed here, keyed like graphql-core's memoized
        #: `collect_subfields` (None: deferred fragments, left to graphql-core).
        self._arguments_by_node: dict[int, tuple[FieldNode, GraphQLField, dict[str, Any]]] = {}
        self._object_plans: dict[tuple[str, int], tuple[FieldDetailsList, Plan | None]] = {}

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        key = (parent_type.name, id(grouped_field_set))
        cached = self._plans.get(key)
        if cached is not None and cached[0] is grouped_field_set:
            return cached[1]
        plan: Plan = [
            self._leaf_step(parent_type, response_name, field_details_list)
            or self._object_step(parent_type, response_name, field_details_list)
            or FieldStep(response_name, field_details_list)
            for response_name, field_details_list in grouped_field_set.items()
        ]
        self._plans[key] = (grouped_field_set, plan)
        return plan

    def _leaf_step(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        field_details_list: FieldDetailsList,
    ) -> LeafStep | None:
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is None or field_def.args or node.arguments:
            return None
        resolve = plain_resolver(field_def)
        return_type = field_def.type
        non_null = isinstance(return_type, GraphQLNonNull)
        leaf_type = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if resolve is None or not is_leaf_type(leaf_type):
            return None
        assert isinstance(leaf_type, GraphQLLeafType)
        unchanged = UNCHANGED.get(leaf_type.coerce_output_value)
        return LeafStep(
            response_name, field_details_list, field_def, resolve, leaf_type, non_null, unchanged
        )

    def _object_step(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        field_details_list: FieldDetailsList,
    ) -> ObjectStep | None:
        if any(details.node.directives for details in field_details_list):
            return None  # @stream, and whatever else may come: graphql-core's
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is None or field_def.args or node.arguments:
            return None
        resolve = plain_resolver(field_def)
        if resolve is None:
            return None
        return_type = field_def.type
        non_null = isinstance(return_type, GraphQLNonNull)
        nullable = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        item_type: GraphQLOutputType | None = None
        item_non_null = False
        named: Any = nullable
        if isinstance(nullable, GraphQLList):
            item_type = nullable.of_type
            item_non_null = isinstance(item_type, GraphQLNonNull)
            named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        runtime_type = runtime_type_of(named, self.schema)
        if runtime_type is None:
            return None
        return ObjectStep(
            response_name,
            field_details_list,
            field_def,
            resolve,
            non_null,
            item_type,
            item_non_null,
            runtime_type,
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:  # resolvers must go through them
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        return self._execute_plan(
            parent_type,
            source_value,
            path,
            self._plan(parent_type, grouped_field_set),
            position_context,
        )

    def _execute_plan(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        plan: Plan,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """`execute_fields` of a planned field set."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for step in plan:
                response_name = step.response_name
                if isinstance(step, LeafStep):
                    try:
                        value = step.resolve(source_value)
                    except Exception as raw_error:
                        self.handle_field_error(
                            raw_error,
                            step.field_def.type,
                            step.field_details_list,
                            Path(path, response_name, parent_type.name),
                        )
                        results[response_name] = None
                        continue
                    if value.__class__ is step.unchanged:
                        results[response_name] = value
                        continue
                    if value is None:
                        if not step.non_null:
                            results[response_name] = None
                            continue
                    elif value.__class__ in PLAIN_VALUES or not (
                        isinstance(value, Exception) or is_awaitable(value)
                    ):
                        try:
                            coerced = step.leaf_type.coerce_output_value(value)
                        except Exception:
                            coerced = None  # graphql-core's completion raises it again
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                    result = self._complete_resolved(
                        parent_type,
                        step.field_def,
                        step.field_details_list,
                        Path(path, response_name, parent_type.name),
                        value,
                        position_context,
                    )
                elif isinstance(step, ObjectStep):
                    result = self._execute_object_field(
                        step, parent_type, source_value, path, position_context
                    )
                else:
                    result = self._execute_field(
                        parent_type,
                        source_value,
                        step.field_details_list,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is Undefined:
                        continue
                results[response_name] = result
                if is_awaitable(result):
                    awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited_results = await gather_with_cancel(
                    *(results[field] for field in awaitable_fields)
                )
                results.update(zip(awaitable_fields, awaited_results, strict=True))
            return results

        return get_results()

    def _execute_object_field(
        self,
        step: ObjectStep,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        field_path = Path(path, step.response_name, parent_type.name)
        return_type = step.field_def.type
        try:
            value = step.resolve(source_value)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, step.field_details_list, field_path)
            return None
        completed: Any = SLOW
        if value is None:
            if not step.non_null:
                return None
        elif not (isinstance(value, Exception) or self.is_awaitable(value)):
            try:
                if step.item_type is None:
                    completed = self._complete_object(
                        step.runtime_type(value),
                        step.field_details_list,
                        field_path,
                        value,
                        position_context,
                    )
                elif value.__class__ is list or value.__class__ is tuple:
                    completed = self._complete_list(
                        step, parent_type, field_path, value, position_context
                    )
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, step.field_details_list, field_path)
                return None
        if completed is SLOW:
            return self._complete_resolved(
                parent_type,
                step.field_def,
                step.field_details_list,
                field_path,
                value,
                position_context,
            )
        if self.is_awaitable(completed):
            return self._await_completed(
                completed, return_type, step.field_details_list, field_path
            )
        return completed

    def _complete_object(
        self,
        object_type: GraphQLObjectType | None,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """`complete_object_value` for a value of a known type, or SLOW."""
        if object_type is None or position_context is not None:
            return SLOW
        key = (object_type.name, id(field_details_list))
        cached = self._object_plans.get(key)
        if cached is None or cached[0] is not field_details_list:
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(
                object_type, field_details_list
            )
            plan = None if new_defer_usages else self._plan(object_type, grouped_field_set)
            cached = self._object_plans[key] = (field_details_list, plan)
        plan = cached[1]
        if plan is None:  # deferred fragments: graphql-core's
            return SLOW
        return self._execute_plan(object_type, value, path, plan, position_context)

    def _complete_list(
        self,
        step: ObjectStep,
        parent_type: GraphQLObjectType,
        path: Path,
        items: list[Any] | tuple[Any, ...],
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        """`complete_iterable_value` for a list of objects (no @stream: see `_object_step`)."""
        item_type = step.item_type
        assert item_type is not None
        field_details_list = step.field_details_list
        runtime_type = step.runtime_type
        is_awaitable = self.is_awaitable
        info: GraphQLResolveInfo | None = None
        completed_results: list[Any] = []
        append = completed_results.append
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = Path(path, index, None)
                completed: Any = SLOW
                if item is None:
                    if not step.item_non_null:
                        append(None)
                        continue
                elif not (isinstance(item, Exception) or is_awaitable(item)):
                    try:
                        completed = self._complete_object(
                            runtime_type(item),
                            field_details_list,
                            item_path,
                            item,
                            position_context,
                        )
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                        append(None)
                        continue
                    if completed is not SLOW:
                        if is_awaitable(completed):
                            append(
                                self._await_completed(
                                    completed, item_type, field_details_list, item_path
                                )
                            )
                            awaitable_indices.append(index)
                        else:
                            append(completed)
                        continue
                # graphql-core's own completion of the item
                if info is None:
                    info = self.build_resolve_info(
                        step.field_def, to_nodes(field_details_list), parent_type, path
                    )
                if is_awaitable(item):
                    append(
                        self.complete_awaitable_list_item_value(
                            item, item_type, field_details_list, info, item_path, position_context
                        )
                    )
                    awaitable_indices.append(index)
                elif self.complete_list_item_value(
                    item,
                    completed_results,
                    item_type,
                    field_details_list,
                    info,
                    item_path,
                    position_context,
                ):
                    awaitable_indices.append(index)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed_results[i] for i in awaitable_indices])
            raise

        if not awaitable_indices:
            return completed_results

        async def get_completed_results() -> list[Any]:
            if len(awaitable_indices) == 1:
                index = awaitable_indices[0]
                completed_results[index] = await completed_results[index]
            else:
                awaited_results = await gather_with_cancel(
                    *(completed_results[index] for index in awaitable_indices)
                )
                for index, sub_result in zip(awaitable_indices, awaited_results, strict=True):
                    completed_results[index] = sub_result
            return completed_results

        return get_completed_results()

    def _execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        """`Executor.execute_field` (without middleware: see `execute_fields`), a field's
        arguments coerced once per request, not for every parent (a connection's page
        arguments under each of a hundred builds)."""
        first_field_details = field_details_list[0]
        first_field_node = first_field_details.node
        field_def = self.schema.get_field(parent_type, first_field_node.name.value)
        if not field_def:
            return Undefined
        return_type = field_def.type
        resolve_fn = field_def.resolve or self.field_resolver
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        try:
            if field_def.args or first_field_node.arguments:
                args = self._arguments(field_def, first_field_details)
            else:
                args = {}
            result = resolve_fn(source, info, **args)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return self._complete(return_type, field_details_list, info, path, result, position_context)

    def _arguments(self, field_def: GraphQLField, field_details: FieldDetails) -> dict[str, Any]:
        """`get_argument_values`, remembered for the request by field node (the variables
        are the request's), except under fragment variables. Resolvers get them as keyword
        arguments: a new dict each time."""
        node = field_details.node
        cacheable = field_details.fragment_variable_values is None
        if cacheable:
            cached = self._arguments_by_node.get(id(node))
            if cached is not None and cached[0] is node and cached[1] is field_def:
                return cached[2]
        args = get_argument_values(
            field_def,
            node,
            self.variable_values,
            field_details.fragment_variable_values,
            self.hide_suggestions,
        )
        if cacheable:
            self._arguments_by_node[id(node)] = (node, field_def, args)
        return args

    def _complete_resolved(
        self,
        parent_type: GraphQLObjectType,
        field_def: GraphQLField,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """What `execute_field` does with a field's resolved value."""
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        return self._complete(
            field_def.type, field_details_list, info, path, result, position_context
        )

    def _complete(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """The completion half of `execute_field`: errors in it are the field's errors."""
        try:
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, position_context
                )
            completed = self.complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
            if self.is_awaitable(completed):
                return self._await_completed(completed, return_type, field_details_list, path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
