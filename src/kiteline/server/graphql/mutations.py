"""What every mutation's input and payload has, declared once: Relay's `clientMutationId`
(given back as it came) and, for a mutation on one object, that object's global `id`.

The domains' inputs and payloads inherit these (inherited fields come first, as Buildkite
lists them); the bases themselves are never in the schema.
"""

from __future__ import annotations

import strawberry


@strawberry.input(name="MutationInput", description="Never in the schema: every input's field")
class MutationInput:
    client_mutation_id: str | None = None


@strawberry.input(name="NodeMutationInput", description="Never in the schema: one object's")
class NodeMutationInput(MutationInput):
    id: strawberry.ID


@strawberry.type(name="MutationPayload", description="Never in the schema: every payload's")
class MutationPayload:
    client_mutation_id: str | None
