"""Decoding pipeline text (YAML or JSON) into plain data, reading YAML the way the agent does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from kiteline.pipeline.errors import PipelineError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
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


@dataclass(frozen=True)
class DocumentLimits:
    """How large a pipeline's text may be, and how much its YAML aliases may add to it.

    An alias (`*name`) stands for a copy of what its anchor (`&name`) marks: aliases of
    aliases grow a few hundred bytes into gigabytes (a "billion laughs"). The nodes aliases
    add, counted each time they are used, are checked before anything is built from them,
    as buildkite-agent does before it sends a pipeline."""

    max_bytes: int = 10 * 1024 * 1024
    max_alias_nodes: int = 100_000
    max_depth: int = 200


DEFAULT_LIMITS = DocumentLimits()


def load_document(source: str | bytes, *, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """The decoded document; invalid text raises PipelineError saying where it broke, and
    text over `limits` is refused before it is decoded (its size) or built (its aliases)."""
    size = len(source) if isinstance(source, bytes) else _utf8_length(source, limits.max_bytes)
    if size > limits.max_bytes:
        raise PipelineError.single(
            f"Pipeline is {size} bytes, larger than the limit of {limits.max_bytes} bytes"
        )
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
        except RecursionError:
            raise _too_deep(limits) from None
    try:
        return _load_yaml(source, limits)
    except RecursionError:
        raise _too_deep(limits) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or "could not be read"
        raise PipelineError.single(f"Pipeline is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise PipelineError.single(f"Pipeline is not valid YAML: {error}") from None


def _utf8_length(text: str, limit: int) -> int:
    """The text's UTF-8 size; a text whose characters alone pass the limit is not encoded."""
    return len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))


def _too_deep(limits: DocumentLimits) -> PipelineError:
    return PipelineError.single(f"Pipeline is nested more than {limits.max_depth} levels deep")


def _load_yaml(source: str, limits: DocumentLimits) -> Any:
    loader = _Loader(source)  # a SafeLoader subclass: no arbitrary objects
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, limits)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node, limits: DocumentLimits) -> None:
    """Refuse a document whose aliases would add more than `limits.max_alias_nodes` nodes, or
    that contains itself, or nests deeper than `limits.max_depth`, without expanding it:
    each distinct node's expanded size is counted once (a node an alias names is the very
    node its anchor marked)."""
    sizes: dict[int, int] = {}
    distinct = 0
    started: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        if finished:
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        if key in started:
            raise PipelineError.single(
                f"Pipeline contains itself: the alias at line {node.start_mark.line + 1} "
                "names a node that holds it"
            )
        if depth > limits.max_depth:
            raise _too_deep(limits)
        started.add(key)
        distinct += 1
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    added = sizes[id(root)] - distinct
    if added > limits.max_alias_nodes:
        raise PipelineError.single(
            f"Pipeline's aliases expand it by {added} nodes, more than the limit of "
            f"{limits.max_alias_nodes}: use fewer aliases of large anchors"
        )
