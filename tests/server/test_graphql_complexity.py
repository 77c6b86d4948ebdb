"""Query complexity as Buildkite documents it, counted on the real schema (no server)."""

from __future__ import annotations

from typing import Any

from graphql import OperationDefinitionNode, get_operation_ast, parse

from kiteline.server.graphql.complexity import Weight, actual_complexity, weigh
from kiteline.server.graphql.schema import schema_for


def _weigh(query: str, **variables: Any) -> Weight:
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    return weigh(schema_for("stock").graphql_core, document, operation, variables)


def test_buildkites_worked_example_costs_503() -> None:
    query = '{ organization(slug: "a") { pipelines(first: 500) { edges { node { slug } } } } }'
    assert _weigh(query) == Weight(requested=503, depth=5)


def test_a_connection_without_first_counts_as_500() -> None:
    query = """
    { organization(slug: "a") { pipelines(first: 500) {
        edges { node { builds { edges { node { number } } } } } } } }
    """
    assert _weigh(query).requested == 251503  # Buildkite's sample error: 3 + 500 x 503


def test_page_sizes_from_variables_last_and_caps() -> None:
    query = """
    query Q($n: Int) {
      organization(slug: "a") { pipelines(first: $n) { edges { node { slug } } } }
    }
    """
    assert _weigh(query, n=10).requested == 13
    assert _weigh(query).requested == 503
    assert _weigh(query, n=100_000).requested == 503
    last = '{ organization(slug: "a") { pipelines(last: 2) { edges { node { slug } } } } }'
    assert _weigh(last).requested == 5


def test_build_meta_data_pages_may_be_larger() -> None:
    query = '{ build(uuid: "x") { metaData(first: 10000) { edges { node { key } } } } }'
    assert _weigh(query).requested == 1 + 1 + 1 + 10_000


def test_count_and_page_info_cost_what_they_are() -> None:
    query = """
    { organization(slug: "a") { pipelines(first: 7) { count pageInfo { hasNextPage } } } }
    """
    assert _weigh(query).requested == 1 + 1 + 1


def test_the_dearest_member_of_a_union_counts() -> None:
    query = """
    { build(uuid: "x") { jobs(first: 10) { edges { node {
        ... on JobTypeCommand { agent { name } pipeline { slug } }
        ... on JobTypeBlock { unblockedBy { name } }
    } } } } }
    """
    assert _weigh(query).requested == 1 + 1 + 1 + 10 * 3


def test_fragments_skip_and_include_are_followed() -> None:
    query = """
    query Q($skip: Boolean!) {
      build(uuid: "x") { ...B pipeline @skip(if: $skip) { slug } }
    }
    fragment B on Build { organization { slug } }
    """
    assert _weigh(query, skip=False).requested == 3
    assert _weigh(query, skip=True).requested == 2


def test_introspection_is_free() -> None:
    assert _weigh("{ __schema { types { name fields { name } } } }") == Weight(0, 0)


def test_actual_complexity_counts_what_was_returned() -> None:
    query = '{ organization(slug: "a") { pipelines(first: 500) { edges { node { slug } } } } }'
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    edges = [{"node": {"slug": f"p{n}"}} for n in range(10)]
    data = {"organization": {"pipelines": {"edges": edges}}}
    assert actual_complexity(schema_for("stock").graphql_core, document, operation, {}, data) == 13
    assert (
        actual_complexity(
            schema_for("stock").graphql_core, document, operation, {}, {"organization": None}
        )
        == 1
    )
