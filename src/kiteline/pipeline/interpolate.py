"""`$VAR` interpolation as `buildkite-agent pipeline upload` does it before sending a pipeline,
and as Buildkite does to a pipeline's saved steps when a build is created: one path for both.

Supported: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
`${VAR:?message}` (error if unset or empty), `${VAR?message}` (error if unset),
`${VAR:offset}` / `${VAR:offset:length}` (negative offsets count from the end; write
`${VAR: -3}` as in bash), `${VAR#glob}` `${VAR##glob}` `${VAR%glob}` `${VAR%%glob}`.
Defaults and messages may themselves contain expansions. `$$` and `\\$` are a literal `$`;
`$(` (a shell command substitution), a `$` before anything but a letter or `{` (`$!`, `$1`)
and a `$` at the very end are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from kiteline.pipeline.document import load_document
from kiteline.pipeline.errors import PipelineError
from kiteline.pipeline.reader import as_env_value


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` with every expansion replaced from `env`; PipelineError on a bad or failed one."""
    return _Interpolator(text, env).expand_until("")


def interpolate_pipeline(source: str | bytes | Any, env: Mapping[str, str]) -> Any:
    """A pipeline (text, or already decoded) with `env` put into every string of it, map keys
    included, as `buildkite-agent pipeline upload` does once it has parsed the file: the
    top-level `env` first, each value seeing those before it (and winning over `env`), then
    the rest. Working on the parsed pipeline, not its text, a value cannot break the YAML
    (a commit message holding `: ` or a newline) and a comment is never read."""
    document = load_document(source) if isinstance(source, str | bytes) else source
    if not isinstance(document, dict):
        return _interpolate_all(document, env)
    merged = dict(env)
    block = document.get("env")
    env_block = _interpolate_env_block(block, merged) if isinstance(block, dict) else None
    result: dict[Any, Any] = {}
    for name, value in document.items():
        if name == "env" and env_block is not None:
            result[name] = env_block
        else:
            result[_interpolate_all(name, merged)] = _interpolate_all(value, merged)
    return result


def _interpolate_env_block(block: dict[Any, Any], merged: dict[str, str]) -> dict[Any, Any]:
    """The top-level `env`, in order; each variable joins `merged` for those after it."""
    interpolated: dict[Any, Any] = {}
    for name, value in block.items():
        text = as_env_value(value)
        if text is None:  # a map or a list: parsing the pipeline reports it
            interpolated[name] = value
            continue
        key = interpolate(str(name), merged)
        interpolated[key] = merged[key] = interpolate(text, merged)
    return interpolated


def _interpolate_all(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_interpolate_all(item, env) for item in value]
    if isinstance(value, dict):
        return {
            _interpolate_all(key, env): _interpolate_all(item, env) for key, item in value.items()
        }
    return value


class _Interpolator:
    def __init__(self, text: str, env: Mapping[str, str]) -> None:
        self.text = text
        self.env = env
        self.position = 0

    def fail(self, message: str) -> PipelineError:
        return PipelineError.single(
            f"Interpolation failed at character {self.position + 1}: {message}"
        )

    def peek(self, length: int = 1) -> str:
        return self.text[self.position : self.position + length]

    def expand_until(self, stop: str) -> str:
        """Text and expansions up to (not including) `stop`, or to the end."""
        parts: list[str] = []
        while self.position < len(self.text) and not (stop and self.peek() == stop):
            two = self.peek(2)
            if two == "\\\\":
                parts.append(two)
                self.position += 2
            elif two in ("\\$", "$$"):
                parts.append("$")
                self.position += 2
            elif two == "$(":
                parts.append(two)
                self.position += 2
            elif self.peek() == "$" and self.position < len(self.text) - 1:
                self.position += 1
                parts.append(self.expansion())
            else:
                parts.append(self.peek())
                self.position += 1
        return "".join(parts)

    def identifier(self) -> str:
        start = self.position
        if not (self.peek().isalpha() or self.peek() == "_"):
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected a variable name after $, found {found} (write $$ for a $)")
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.position += 1
        return self.text[start : self.position]

    def expansion(self) -> str:
        if self.peek() != "{":
            if not self.peek().isalpha():
                return "$"  # `$!`, `$5`, `$?`: the shell's, left alone as buildkite-agent does
            return self.env.get(self.identifier(), "")
        self.position += 1
        name = self.identifier()
        value = self.env.get(name)
        operator = self.operator()
        if operator == "":
            result = value or ""
        elif operator in (":-", "-"):
            fallback = self.expand_until("}")
            use_fallback = value is None or (operator == ":-" and value == "")
            result = fallback if use_fallback else value or ""
        elif operator in (":?", "?"):
            message = self.expand_until("}")
            if value is None or (operator == ":?" and value == ""):
                detail = message or ("is not set" if operator == "?" else "is not set or empty")
                raise PipelineError.single(f"${name}: {detail}")
            result = value
        elif operator == ":":
            result = self.substring(value or "")
        else:
            result = _remove_pattern(value or "", self.expand_until("}"), operator)
        if self.peek() != "}":
            raise self.fail(f"expected }} to close ${{{name}")
        self.position += 1
        return result

    def operator(self) -> str:
        for operator in ("}", ":-", ":?", ":", "-", "?", "##", "#", "%%", "%"):
            if self.text.startswith(operator, self.position):
                if operator != "}":
                    self.position += len(operator)
                return "" if operator == "}" else operator
        found = repr(self.peek()) if self.peek() else "the end"
        raise self.fail(f"expected }} or an operator such as :- after the name, found {found}")

    def substring(self, value: str) -> str:
        offset = self.number(":}")
        length: int | None = None
        if self.peek() == ":":
            self.position += 1
            length = self.number("}")
        start = max(0, min(len(value), offset + len(value) if offset < 0 else offset))
        if length is None:
            return value[start:]
        end = start + length if length >= 0 else max(start, len(value) + length)
        return value[start : min(end, len(value))]

    def number(self, stops: str) -> int:
        start = self.position
        while self.peek() and self.peek() not in stops:
            self.position += 1
        raw = self.text[start : self.position]
        try:
            return int(raw.strip())
        except ValueError:
            raise self.fail(f"expected a number in a substring expansion, found {raw!r}") from None


def _remove_pattern(value: str, pattern: str, operator: str) -> str:
    """Strip the shortest (`#`, `%`) or longest (`##`, `%%`) prefix (`#`) or suffix (`%`)
    matching the glob `pattern`."""
    lengths = range(1, len(value) + 1)
    ordered = reversed(lengths) if len(operator) == 2 else lengths
    for length in ordered:
        if operator.startswith("#") and fnmatchcase(value[:length], pattern):
            return value[length:]
        if operator.startswith("%") and fnmatchcase(value[len(value) - length :], pattern):
            return value[: len(value) - length]
    return value
