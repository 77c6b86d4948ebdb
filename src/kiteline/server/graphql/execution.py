"""How graphql-core runs Kiteline's schema: strawberry's execution context, with a shorter
path for the leaf fields that make up most of a large answer.

A dashboard query completes some 10,000 scalar and enum fields whose resolvers only read
their source (`shortcuts.plain_resolver`). For each, graphql-core builds a path and an info
object, checks for awaitables and walks its completion rules. Here such a field is resolved
and coerced directly; anything out of the ordinary (an exception, a null where none is
allowed, an awaitable, a value its type refuses) is handed to graphql-core's own completion,
so answers and errors are exactly what graphql-core would produce.

Mirrors `Executor.execute_fields` and the end of `Executor.execute_field` (graphql-core 3.3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import gather_with_cancel, to_nodes
from graphql.pyutils import AwaitableOrValue, Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from kiteline.server.graphql.shortcuts import plain_resolver

#: Values that are never awaitable nor exceptions: no need to ask.
_PLAIN_VALUES = frozenset({str, int, bool, float})


class _LeafStep(NamedTuple):
    """A leaf field whose resolver needs only its source, and without arguments."""

    response_name: str
    field_details_list: FieldDetailsList
    field_def: GraphQLField
    resolve: Callable[[Any], Any]
    leaf_type: GraphQLLeafType
    non_null: bool


class _FieldStep(NamedTuple):
    """Any other field: graphql-core's `execute_field`."""

    response_name: str
    field_details_list: FieldDetailsList


_Plan = list[_LeafStep | _FieldStep]


class KitelineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed by the identity of graphql-core's memoized field sets, kept alive with them.
        self._plans: dict[tuple[str, int], tuple[GroupedFieldSet, _Plan]] = {}

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        key = (parent_type.name, id(grouped_field_set))
        cached = self._plans.get(key)
        if cached is not None and cached[0] is grouped_field_set:
            return cached[1]
        plan: _Plan = [
            self._leaf_step(parent_type, response_name, field_details_list)
            or _FieldStep(response_name, field_details_list)
            for response_name, field_details_list in grouped_field_set.items()
        ]
        self._plans[key] = (grouped_field_set, plan)
        return plan

    def _leaf_step(
        self,
        parent_type: GraphQLObjectType,
        response_name: str,
        field_details_list: FieldDetailsList,
    ) -> _LeafStep | None:
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
        return _LeafStep(response_name, field_details_list, field_def, resolve, leaf_type, non_null)

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
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for step in self._plan(parent_type, grouped_field_set):
                response_name = step.response_name
                if isinstance(step, _LeafStep):
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
                    if value is None:
                        if not step.non_null:
                            results[response_name] = None
                            continue
                    elif value.__class__ in _PLAIN_VALUES or not (
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
                else:
                    result = self.execute_field(
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
        return_type = field_def.type
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
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
