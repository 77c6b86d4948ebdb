"""Reading block and input steps, and the text and select fields they ask people to fill in."""

from __future__ import annotations

import re
from typing import Any, Literal

from kiteline.pipeline.models import BlockStep, Field, SelectField, SelectOption, TextField
from kiteline.pipeline.parse_common import LABEL_ALIASES, read_common
from kiteline.pipeline.reader import Reader, as_text

BLOCK_LABEL_KEYS = ("block", "input", "manual", *LABEL_ALIASES)
_FIELD_KEY = re.compile(r"[a-zA-Z0-9\-_]+")
_BLOCKED_STATES: dict[str, Literal["passed", "failed", "running"]] = {
    "passed": "passed",
    "failed": "failed",
    "running": "running",
}


def read_block_step(
    reader: Reader,
    raw: dict[str, Any],
    kind: Literal["block", "input"],
    seen_keys: dict[str, str],
) -> BlockStep:
    common = read_common(reader, raw, BLOCK_LABEL_KEYS, seen_keys)
    state = reader.choice("blocked_state", tuple(_BLOCKED_STATES), "passed")
    return BlockStep(
        **common.fields(),
        kind=kind,
        prompt=reader.string("prompt"),
        fields=_read_fields(reader),
        blocked_state=_BLOCKED_STATES[state],
        allowed_teams=reader.string_list("allowed_teams"),
    )


def _read_fields(reader: Reader) -> list[Field]:
    value = reader.items("fields", "text and select fields")
    fields: list[Field] = []
    keys: set[str] = set()
    for entry in reader.entries("fields", value, "text or select, and key"):
        key = _read_field_key(entry, keys)
        if key is None:
            continue
        is_select = entry.has("select") or entry.has("options")
        fields.append(_read_select(entry, key) if is_select else _read_text(entry, key))
    return fields


def _read_field_key(entry: Reader, keys: set[str]) -> str | None:
    key = entry.string("key", required=True)
    if not key:
        return None
    if not _FIELD_KEY.fullmatch(key):
        entry.report("key", "may only contain letters, digits, - and _")
    elif key in keys:
        entry.report("key", f'"{key}" is already used by another field of this step')
    keys.add(key)
    return key


def _read_text(entry: Reader, key: str) -> TextField:
    pattern = entry.string("format")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            entry.report("format", f"is not a valid regular expression ({error})")
    return TextField(
        key=key,
        text=entry.string("text"),
        hint=entry.string("hint"),
        format=pattern,
        required=entry.boolean("required", default=True),
        default=entry.string("default"),
    )


def _read_select(entry: Reader, key: str) -> SelectField:
    options = _read_options(entry)
    multiple = entry.boolean("multiple")
    default = _read_default(entry, multiple)
    values = {option.value for option in options}
    chosen = [default] if isinstance(default, str) else default or []
    for value in chosen:
        if options and value not in values:
            entry.report("default", f'"{value}" is not the value of any option')
    return SelectField(
        key=key,
        options=options,
        select=entry.string("select"),
        hint=entry.string("hint"),
        default=default,
        multiple=multiple,
        required=entry.boolean("required", default=True),
    )


def _read_options(entry: Reader) -> list[SelectOption]:
    value = entry.get("options")
    if not isinstance(value, list) or not value:
        entry.report("options", "must be a list of at least one {label, value}")
        return []
    options: list[SelectOption] = []
    for option in entry.entries("options", value, "label and value"):
        label = option.string("label", required=True)
        choice = option.string("value", required=True)
        if label is not None and choice is not None:
            options.append(
                SelectOption(
                    label=label,
                    value=choice,
                    hint=option.string("hint"),
                    required=option.boolean("required", default=True),
                )
            )
    return options


def _read_default(entry: Reader, multiple: bool) -> str | list[str] | None:
    value = entry.get("default")
    if value is None:
        return None
    if isinstance(value, list):
        texts = [as_text(item) for item in value]
        if any(text is None for text in texts):
            entry.report("default", "must be a string or a list of strings")
            return None
        if not multiple:
            entry.report("default", "can only be a list when multiple is true")
        return [text for text in texts if text is not None]
    return entry.string("default")
