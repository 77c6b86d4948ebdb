"""Build-list query strings as clients really send them: `state[]` or `state`, percent-encoded
brackets, `True` for true, dates with a `+` decoded to a space, `meta_data[key]=value`."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request

from kiteline.server.builds.repository import BuildFilter
from kiteline.server.builds.states import BuildState
from kiteline.server.kit.errors import BadRequest
from kiteline.server.kit.query import flag

STATE_FILTERS = frozenset({state.value for state in BuildState} | {"finished"})
META_DATA_PARAM = re.compile(r"^meta_data\[(.+)\]$")


def parse_time(name: str, value: str) -> datetime:
    """ISO-8601 dates and times; `+HH:MM` offsets may arrive with the `+` turned into a space."""
    text = value.strip()
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise BadRequest(f"{name} must be an ISO 8601 date or time, got {value!r}") from error


@dataclass(frozen=True)
class ListOptions:
    where: BuildFilter
    include_retried_jobs: bool = False
    exclude_jobs: bool = False
    exclude_pipeline: bool = False

    @classmethod
    def from_request(cls, request: Request) -> ListOptions:
        query = request.query_params

        def many(name: str) -> list[str]:
            return [v for v in query.getlist(name) + query.getlist(f"{name}[]") if v]

        states = many("state")
        unknown = [state for state in states if state not in STATE_FILTERS]
        if unknown:
            raise BadRequest(
                f"state must be one of {', '.join(sorted(STATE_FILTERS))}, got {unknown[0]!r}"
            )
        creator = query.get("creator")
        creator_id = None
        if creator:
            try:
                creator_id = uuid.UUID(creator)
            except ValueError as error:
                raise BadRequest(f"creator must be a user UUID, got {creator!r}") from error
        meta_data = {
            match.group(1): value
            for key, value in query.multi_items()
            if (match := META_DATA_PARAM.match(key))
        }

        def time(name: str) -> datetime | None:
            value = query.get(name)
            return parse_time(name, value) if value else None

        return cls(
            where=BuildFilter(
                branches=many("branch"),
                states=states,
                commits=many("commit"),
                creator_id=creator_id,
                created_from=time("created_from"),
                created_to=time("created_to"),
                finished_from=time("finished_from"),
                meta_data=meta_data,
            ),
            include_retried_jobs=flag(query, "include_retried_jobs"),
            exclude_jobs=flag(query, "exclude_jobs"),
            exclude_pipeline=flag(query, "exclude_pipeline"),
        )
