"""The fast execution path (`KITELINE_GRAPHQL_EXECUTION=fast`, the default), behind one door.

A dashboard query completes some 10,000 fields; strawberry's per-field machinery and
graphql-core's completion walk cost more than the fields themselves. `install` takes
shortcuts past strawberry's resolver wrappers (`shortcuts.py`) and `ExecutionContext`
completes plain fields directly (`execution.py`): stock execution needs about 1.9 times the
server CPU per answer on `bench/graphql_query.py` (docs/performance.md). Answers and errors
are exactly the stock ones (tests/server/test_graphql_execution.py, test_graphql_modes.py).

Both rest on what neither library promises to keep:
- graphql-core's executor internals: `ExecutionContext.execute_fields`, `execute_field`,
  `complete_value`, `complete_list_item_value`, `collect_subfields`, `build_resolve_info`,
  `handle_field_error`, `settle_in_background`, `graphql.execution.collect_fields`'s field
  details and `graphql.execution.executor.gather_with_cancel` / `to_nodes` (3.3);
- strawberry's `StrawberryGraphQLCoreExecutionContext`, `Schema._schema`,
  `GraphQLCoreConverter.DEFINITION_BACKREF`, `CustomGraphQLEnumType.wrapped_cls`, its
  resolvers' `_is_default` mark and the `__qualname__` of the `is_type_of` it generates.

So strawberry-graphql and graphql-core are pinned to one minor version each (pyproject.toml).
After raising a pin, run the GraphQL tests: the execution tests compare this path with stock
execution field by field, and a server started with `KITELINE_GRAPHQL_EXECUTION=stock` runs
strawberry and graphql-core as they come while this package is fixed.

Nothing outside this package imports its modules (an import-linter contract): the schema
module asks for `ExecutionContext` and `install` here.
"""

from __future__ import annotations

import strawberry

from kiteline.server.graphql.fast.execution import KitelineExecutionContext
from kiteline.server.graphql.fast.shortcuts import take_shortcuts

#: graphql-core's execution context for a schema built for the fast path.
ExecutionContext = KitelineExecutionContext


def install(schema: strawberry.Schema) -> None:
    """Take the shortcuts in a schema built with `execution_context_class=ExecutionContext`
    (once, before it runs anything)."""
    take_shortcuts(schema)


__all__ = ["ExecutionContext", "install"]
