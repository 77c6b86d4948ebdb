"""`redactor add`: values the job wants kept out of its log from now on."""

from __future__ import annotations

import enum
import json
from pathlib import Path

from kiteline.agent.in_job.context import InJobError, JobEnvironment
from kiteline.agent.redactor import REDACTOR_FILE_ENV, append_redactions


class RedactionFormat(enum.StrEnum):
    NONE = "none"
    """The whole input is one value (surrounding whitespace and newlines dropped)."""
    JSON = "json"
    """A JSON object: each of its values is redacted."""


def add_redactions(env: JobEnvironment, text: str, *, input_format: RedactionFormat) -> int:
    """Hand the values in `text` to the job's redactor; how many were added."""
    path = env.values.get(REDACTOR_FILE_ENV, "")
    if not path:
        raise InJobError(
            f"{REDACTOR_FILE_ENV} is not set: `redactor add` works inside a job run by a "
            "Kiteline agent"
        )
    values = _values(text, input_format)
    if not values:
        raise InJobError("There is nothing to redact: the input is empty")
    try:
        append_redactions(Path(path), values)
    except OSError as error:
        raise InJobError(f"Could not add to the redactor ({path}): {error.strerror}") from error
    return len(values)


def _values(text: str, input_format: RedactionFormat) -> list[str]:
    if input_format is RedactionFormat.NONE:
        return [text.strip()] if text.strip() else []
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InJobError(f"The input is not JSON: {error}") from error
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise InJobError('The input must be a JSON object of strings, e.g. {"NAME": "secret"}')
    return [value for value in document.values() if value]
