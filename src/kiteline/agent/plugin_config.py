"""A plugin's configuration as its hooks see it: `BUILDKITE_PLUGIN_<NAME>_<KEY>` variables and
`BUILDKITE_PLUGIN_CONFIGURATION`, named and encoded exactly as buildkite-agent v3 does."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

# Go's regexp `\s` is ASCII whitespace only (no vertical tab, no Unicode spaces).
_HYPHEN_OR_SPACE = re.compile(r"[-\t\n\f\r ]")
_CONSECUTIVE_UNDERSCORES = re.compile(r"_+")
# Go's json.Marshal escapes these (HTML safety, JavaScript line separators); Python does not.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class JsonNumber(str):
    """A JSON number kept as written (`1.50` stays `1.50`), as Go's `json.Number` keeps it."""


JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | JsonNumber | bool | None"


class ConfigurationError(ValueError):
    """The configuration holds a value buildkite-agent cannot turn into variables (a null)."""


def load_json(text: str) -> JsonValue:
    """Parse JSON as buildkite-agent does (numbers kept as written; NaN/Infinity refused)."""

    def refuse(constant: str) -> JsonValue:
        raise ValueError(f"invalid JSON value {constant}")

    value: JsonValue = json.loads(
        text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=refuse
    )
    return value


def dump_json(value: object) -> str:
    """Compact JSON with sorted keys and Go's escaping: the bytes Go's json.Marshal writes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in _GO_ESCAPES.items():
            text = text.replace(char, escaped)
        return text
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ",".join(f"{dump_json(str(k))}:{dump_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump_json(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def env_key(text: str) -> str:
    """`config-key` -> `CONFIG_KEY`: upper-cased, each hyphen or whitespace one underscore."""
    # Go upper-cases one character at a time (ß stays ß); Python would make it SS.
    upper = "".join(c.upper() if len(c.upper()) == 1 else c for c in text)
    return _HYPHEN_OR_SPACE.sub("_", upper)


@dataclass(frozen=True)
class PluginEnvironment:
    """What one plugin's hooks get on top of the job's environment."""

    variables: dict[str, str]
    deprecated: list[tuple[str, str]] = field(default_factory=list)
    """(old name, new name) pairs: collapsed-underscore aliases v3 still exports."""


def configuration_env(name: str, configuration: Mapping[str, JsonValue]) -> PluginEnvironment:
    """The variables for a plugin called `name` (see `Plugin.name`) with `configuration`.

    Nested maps add `_<KEY>`, lists add `_<index>`; scalars are written as JSON writes them
    (`true`, `42`). buildkite-agent v3 also exports each name that has runs of underscores
    with the runs collapsed (the names before v3.48), and reports those as deprecated.
    Raises ConfigurationError for a null anywhere in the configuration: buildkite-agent then
    gives the plugin's hooks none of these variables.
    """
    prefix = f"BUILDKITE_PLUGIN_{env_key(name)}"
    variables = {
        "BUILDKITE_PLUGIN_NAME": env_key(name),
        "BUILDKITE_PLUGIN_CONFIGURATION": dump_json(configuration),
    }
    _flatten(variables, dict(configuration), prefix)
    deprecated: list[tuple[str, str]] = []
    for key, value in list(variables.items()):
        collapsed = _CONSECUTIVE_UNDERSCORES.sub("_", key)
        if collapsed != key:
            variables[collapsed] = value
            deprecated.append((collapsed, key))
    return PluginEnvironment(variables=variables, deprecated=sorted(deprecated))


def _flatten(into: dict[str, str], value: JsonValue, prefix: str) -> None:
    if isinstance(value, bool):
        into[prefix] = "true" if value else "false"
    elif isinstance(value, str):  # JsonNumber included: its text as written
        into[prefix] = str(value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(into, item, f"{prefix}_{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(into, item, f"{prefix}_{env_key(key)}")
    else:
        # buildkite-agent's own wording for a null ("unknown type <nil> <nil>").
        raise ConfigurationError("unknown type <nil> <nil>")
