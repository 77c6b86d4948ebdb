"""Kiteline's GraphQL API: Buildkite's schema at /v1 and /graphql, resolved through the same
domain services as REST. The types live with their domains (`<domain>/graphql.py`); this
package assembles the schema (`schema`) and holds what they share: the request context and
its loaders, connections, complexity and budgets, and the endpoint (`endpoint`)."""
