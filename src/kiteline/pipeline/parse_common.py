"""Reading what every step type shares: key, label, `if`, branches, dependencies, notify."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiteline.pipeline.conditions import find_condition_problem
from kiteline.pipeline.models import Dependency
from kiteline.pipeline.reader import Reader, as_text

KEY_MAX_LENGTH = 100
_KEY_PATTERN = re.compile(r"[a-zA-Z0-9_\-:${}.,]+")
_UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
KEY_ALIASES = ("key", "identifier", "id")
LABEL_ALIASES = ("label", "name")
_SIMPLE_NOTIFICATIONS = ("github_check", "github_commit_status")


@dataclass(frozen=True, kw_only=True)
class Common:
    """The shared fields, ready to pass on to a step model's constructor."""

    key: str | None
    label: str | None
    if_: str | None
    branches: list[str]
    depends_on: list[Dependency] | None
    allow_dependency_failure: bool
    raw: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def read_common(
    reader: Reader, raw: dict[str, Any], label_keys: tuple[str, ...], seen_keys: dict[str, str]
) -> Common:
    """Shared fields; `label_keys` lists where the label may be, first match wins;
    `seen_keys` maps keys already used in the pipeline to the step that used them."""
    key = _read_key(reader, seen_keys)
    condition = read_condition(reader)
    branches = reader.string_list("branches")
    if condition is not None and branches:
        reader.report("if", "can't be used together with branches")
    return Common(
        key=key,
        label=read_label(reader, label_keys),
        if_=condition,
        branches=branches,
        depends_on=_read_depends_on(reader),
        allow_dependency_failure=reader.boolean("allow_dependency_failure"),
        raw=raw,
    )


def read_label(reader: Reader, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if reader.get(key) is not None:
            return reader.string(key)
    return None


def read_condition(reader: Reader) -> str | None:
    """The `if` expression, reported if it doesn't parse or names unknown variables."""
    condition = reader.string("if")
    problem = find_condition_problem(condition) if condition is not None else None
    if problem is not None:
        reader.report("if", f"is not a valid condition: {problem}")
    return condition


def guess_key(data: Mapping[str, Any]) -> str | None:
    """The step's key before validation, for naming the step in issues."""
    return next((data[k] for k in KEY_ALIASES if isinstance(data.get(k), str)), None)


def guess_label(data: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((data[k] for k in keys if isinstance(data.get(k), str)), None)


def read_notify(reader: Reader, key: str = "notify") -> list[dict[str, Any]]:
    """Notifications, shape-checked only; `github_check` alone becomes `{github_check: {}}`."""
    value = reader.items(key, "notifications")
    result: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        name = f"{key}[{index}]"
        if isinstance(item, str) and item in _SIMPLE_NOTIFICATIONS:
            result.append({item: {}})
        elif isinstance(item, Mapping) and item:
            read_condition(reader.item(key, index, item))
            result.append(dict(item))
        else:
            choices = " or ".join(_SIMPLE_NOTIFICATIONS)
            reader.report(name, f"must be a map such as {{slack: ...}}, or {choices}")
    return result


def _read_key(reader: Reader, seen_keys: dict[str, str]) -> str | None:
    alias = reader.present(*KEY_ALIASES)
    if alias is None or reader.get(alias) is None:
        return None
    key = reader.string(alias)
    if key is None:
        return None
    if len(key) > KEY_MAX_LENGTH:
        reader.report(alias, f"must be at most {KEY_MAX_LENGTH} characters")
    elif not _KEY_PATTERN.fullmatch(key):
        reader.report(alias, "may only contain letters, digits and _ - : $ { } . ,")
    elif _UUID_PATTERN.fullmatch(key):
        reader.report(alias, "must not look like a UUID")
    elif key in seen_keys:
        reader.report(alias, f'"{key}" is already the key of {seen_keys[key]}')
    else:
        seen_keys[key] = reader.ref.mention or "another step"
    return key


def _read_depends_on(reader: Reader) -> list[Dependency] | None:
    if not reader.has("depends_on"):
        return None
    value = reader.get("depends_on")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    dependencies: list[Dependency] = []
    for index, item in enumerate(items):
        name = f"depends_on[{index}]" if isinstance(value, list) else "depends_on"
        dependency = _read_dependency(reader, name, item)
        if dependency is None:
            reader.report(name, "must be a step key or {step: <key>, allow_failure: <bool>}")
        else:
            dependencies.append(dependency)
    return dependencies


def _read_dependency(reader: Reader, name: str, item: object) -> Dependency | None:
    if isinstance(item, Mapping):
        key = as_text(item.get("step"))
        if not key:
            return None
        entry = Reader(item, reader.ref, reader.issues, f"{reader.name(name)}.")
        return Dependency(key=key, allow_failure=entry.boolean("allow_failure"))
    key = as_text(item)
    return Dependency(key=key) if key else None
