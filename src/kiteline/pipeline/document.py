"""Decoding pipeline text (YAML or JSON) into plain data, reading YAML the way the agent does."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from kiteline.pipeline.errors import PipelineError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """YAML read as go-yaml (the agent's parser) reads it: only `true`/`false` are booleans
    (`yes`, `on` stay strings), dates stay strings, and a key given twice in a map is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f'key "{key_node.value}" appears twice in the same map',
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_document(source: str | bytes) -> Any:
    """The decoded document; invalid text raises PipelineError saying where it broke."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise PipelineError.single(
                f"Pipeline is not UTF-8 text (bad byte at offset {error.start})"
            ) from None
    if source.lstrip().startswith(("{", "[")):
        try:
            return json.loads(source)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with { or [; let YAML have a go
    try:
        return yaml.load(source, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or "could not be read"
        raise PipelineError.single(f"Pipeline is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise PipelineError.single(f"Pipeline is not valid YAML: {error}") from None
