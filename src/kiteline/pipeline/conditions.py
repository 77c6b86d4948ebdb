"""Buildkite's `if` expression language: tokenizer, recursive-descent parser and evaluator.

Precedence, loosest first: `||`, `&&`, then the comparisons `== != =~ !~ includes` (left to
right, all one level), then prefix `!`. Only `null` and `false` are falsy. A `/regex/` may only
follow `=~` or `!~`; its only flag is `i`. `//` starts a comment that runs to the end of the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeAlias

from kiteline.pipeline.errors import PipelineError

KNOWN_VARIABLES = frozenset(
    {
        "build.author.email",
        "build.author.id",
        "build.author.name",
        "build.author.teams",
        "build.blocked_state",
        "build.branch",
        "build.commit",
        "build.creator.email",
        "build.creator.id",
        "build.creator.name",
        "build.creator.teams",
        "build.id",
        "build.message",
        "build.number",
        "build.pull_request.base_branch",
        "build.pull_request.draft",
        "build.pull_request.id",
        "build.pull_request.labels",
        "build.pull_request.repository",
        "build.pull_request.repository.fork",
        "build.source",
        "build.state",
        "build.tag",
        "organization.id",
        "organization.slug",
        "pipeline.default_branch",
        "pipeline.id",
        "pipeline.repository",
        "pipeline.slug",
        "step.id",
        "step.key",
        "step.label",
        "step.outcome",
        "step.state",
        "step.type",
    }
)
# `build.env("X")` is null when X is unset; `env("X")` is the empty string.
KNOWN_FUNCTIONS = frozenset({"build.env", "env"})

_COMPARISONS = ("==", "!=", "=~", "!~", "includes")
_TWO_CHAR_OPERATORS = ("==", "!=", "=~", "!~", "&&", "||")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEYWORDS = {"true": True, "false": False, "null": None}
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class ConditionContext:
    """What a condition can see: the documented variables by dotted name, and the build env."""

    variables: Mapping[str, object] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


class _ConditionProblem(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at line {line}, column {column}")


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, int, string, regex, keyword, op, "(", ")", ",", end
    text: str
    line: int
    column: int
    value: object = None


@dataclass(frozen=True)
class _Literal:
    value: object


@dataclass(frozen=True)
class _Variable:
    name: str


@dataclass(frozen=True)
class _Call:
    name: str
    argument: _Node


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _Binary:
    operator: str
    left: _Node
    right: _Node
    line: int
    column: int


@dataclass(frozen=True)
class _Match:
    negated: bool
    subject: _Node
    pattern: re.Pattern[str]


_Node: TypeAlias = _Literal | _Variable | _Call | _Not | _Binary | _Match


def validate_condition(expression: str) -> None:
    """Raise PipelineError if `expression` is not a valid condition (syntax, names, regexes)."""
    problem = find_condition_problem(expression)
    if problem is not None:
        raise PipelineError.single(f"invalid condition: {problem}", path="if")


def find_condition_problem(expression: str) -> str | None:
    """What is wrong with `expression`, with its line and column; None when it is valid."""
    try:
        _parse(expression)
    except _ConditionProblem as problem:
        return str(problem)
    return None


def evaluate_condition(expression: str, context: ConditionContext) -> bool:
    """Whether the step (or notification) guarded by `expression` applies in `context`."""
    try:
        tree = _parse(expression)
        result = _evaluate(tree, context)
    except _ConditionProblem as problem:
        raise PipelineError.single(f"invalid condition: {problem}", path="if") from None
    if result is None or isinstance(result, bool):
        return bool(result)
    raise PipelineError.single(
        f"condition must evaluate to true or false, not {_type_name(result)}", path="if"
    )


@lru_cache(maxsize=512)
def _parse(expression: str) -> _Node:
    return _Parser(_tokenize(expression)).parse()


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    index, line, line_start = 0, 1, 0
    while index < len(source):
        char = source[index]
        column = index - line_start + 1
        after_match = bool(tokens) and tokens[-1].text in ("=~", "!~")
        if char == "\n":
            index, line, line_start = index + 1, line + 1, index + 1
        elif char.isspace():
            index += 1
        elif char == "/" and after_match:
            token, index = _read_regex(source, index, line, column)
            tokens.append(token)
        elif source.startswith("//", index):
            end = source.find("\n", index)
            index = len(source) if end == -1 else end
        elif char == "/":
            raise _ConditionProblem("a /regex/ can only follow =~ or !~", line, column)
        elif source[index : index + 2] in _TWO_CHAR_OPERATORS:
            tokens.append(_Token("op", source[index : index + 2], line, column))
            index += 2
        elif char == "!":
            tokens.append(_Token("op", "!", line, column))
            index += 1
        elif char in "(),":
            tokens.append(_Token(char, char, line, column))
            index += 1
        elif char in "'\"":
            token, index = _read_string(source, index, line, column)
            tokens.append(token)
        elif char.isdigit() or (char == "-" and source[index + 1 : index + 2].isdigit()):
            number = re.match(r"-?\d+", source[index:])
            assert number is not None
            text = number.group()
            tokens.append(_Token("int", text, line, column, int(text)))
            index += len(text)
        elif (name := _IDENTIFIER.match(source, index)) is not None:
            text = name.group()
            kind = "keyword" if text in _KEYWORDS or text == "includes" else "ident"
            tokens.append(_Token(kind, text, line, column, _KEYWORDS.get(text)))
            index += len(text)
        else:
            raise _ConditionProblem(f"unexpected character {char!r}", line, column)
    tokens.append(_Token("end", "end of condition", line, index - line_start + 1))
    return tokens


def _read_string(source: str, start: int, line: int, column: int) -> tuple[_Token, int]:
    quote = source[start]
    chars: list[str] = []
    index = start + 1
    while index < len(source) and source[index] != quote:
        if source[index] == "\n":
            break
        if source[index] == "\\" and index + 1 < len(source):
            escaped = source[index + 1]
            chars.append(_STRING_ESCAPES.get(escaped, escaped))
            index += 2
        else:
            chars.append(source[index])
            index += 1
    if index >= len(source) or source[index] != quote:
        raise _ConditionProblem(f"string starting with {quote} is never closed", line, column)
    return _Token("string", source[start : index + 1], line, column, "".join(chars)), index + 1


def _read_regex(source: str, start: int, line: int, column: int) -> tuple[_Token, int]:
    chars: list[str] = []
    index = start + 1
    while index < len(source) and source[index] not in "/\n":
        if source[index] == "\\" and source[index + 1 : index + 2] == "/":
            chars.append("/")
            index += 2
        elif source[index] == "\\" and index + 1 < len(source):
            chars.append(source[index : index + 2])
            index += 2
        else:
            chars.append(source[index])
            index += 1
    if index >= len(source) or source[index] != "/":
        raise _ConditionProblem("/regex/ is never closed", line, column)
    flags_match = re.match(r"[A-Za-z]*", source[index + 1 :])
    flags = flags_match.group() if flags_match else ""
    unsupported = set(flags) - {"i"}
    if unsupported:
        flag = sorted(unsupported)[0]
        raise _ConditionProblem(
            f"unsupported regex flag {flag!r} (only i is allowed)", line, column
        )
    try:
        pattern = re.compile("".join(chars), re.IGNORECASE if flags else 0)
    except re.error as error:
        raise _ConditionProblem(f"invalid regular expression ({error})", line, column) from None
    end = index + 1 + len(flags)
    return _Token("regex", source[start:end], line, column, pattern), end


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.position]

    def advance(self) -> _Token:
        token = self.tokens[self.position]
        if token.kind != "end":
            self.position += 1
        return token

    def fail(self, message: str, token: _Token | None = None) -> _ConditionProblem:
        token = token or self.current
        return _ConditionProblem(message, token.line, token.column)

    def parse(self) -> _Node:
        if self.current.kind == "end":
            raise self.fail("condition is empty")
        tree = self.parse_or()
        if self.current.kind != "end":
            raise self.fail(f"unexpected {_show(self.current)}")
        return tree

    def parse_or(self) -> _Node:
        left = self.parse_and()
        while self.current.text == "||":
            operator = self.advance()
            right = self.parse_and()
            left = _Binary("||", left, right, operator.line, operator.column)
        return left

    def parse_and(self) -> _Node:
        left = self.parse_comparison()
        while self.current.text == "&&":
            operator = self.advance()
            right = self.parse_comparison()
            left = _Binary("&&", left, right, operator.line, operator.column)
        return left

    def parse_comparison(self) -> _Node:
        left = self.parse_unary()
        while self.current.text in _COMPARISONS and self.current.kind in ("op", "keyword"):
            operator = self.advance()
            if operator.text in ("=~", "!~"):
                if self.current.kind != "regex":
                    raise self.fail(f"expected a /regex/ after {operator.text}")
                pattern = self.advance().value
                assert isinstance(pattern, re.Pattern)
                left = _Match(operator.text == "!~", left, pattern)
            else:
                right = self.parse_unary()
                left = _Binary(operator.text, left, right, operator.line, operator.column)
        return left

    def parse_unary(self) -> _Node:
        if self.current.text == "!" and self.current.kind == "op":
            self.advance()
            return _Not(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> _Node:
        token = self.current
        if token.kind in ("int", "string") or (token.kind == "keyword" and token.text in _KEYWORDS):
            self.advance()
            return _Literal(token.value)
        if token.kind == "(":
            self.advance()
            inner = self.parse_or()
            if self.current.kind != ")":
                raise self.fail(f'expected ")" but found {_show(self.current)}')
            self.advance()
            return inner
        if token.kind == "ident":
            self.advance()
            if self.current.kind == "(":
                return self.parse_call(token)
            if token.text not in KNOWN_VARIABLES:
                raise self.fail(f"unknown variable {token.text}", token)
            return _Variable(token.text)
        if token.kind == "end":
            raise self.fail("condition ends too early: expected a value")
        raise self.fail(f"expected a value but found {_show(token)}")

    def parse_call(self, name: _Token) -> _Node:
        if name.text not in KNOWN_FUNCTIONS:
            raise self.fail(f"unknown function {name.text}()", name)
        self.advance()
        if self.current.kind == ")":
            raise self.fail(f"{name.text}() needs one argument")
        argument = self.parse_or()
        if self.current.kind == ",":
            raise self.fail(f"{name.text}() takes only one argument")
        if self.current.kind != ")":
            raise self.fail(f'expected ")" but found {_show(self.current)}')
        self.advance()
        return _Call(name.text, argument)


def _show(token: _Token) -> str:
    return token.text if token.kind == "end" else f'"{token.text}"'


def _evaluate(node: _Node, context: ConditionContext) -> object:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Variable):
        return context.variables.get(node.name)
    if isinstance(node, _Call):
        name = _evaluate(node.argument, context)
        value = context.env.get(str(name))
        return value if value is not None or node.name == "build.env" else ""
    if isinstance(node, _Not):
        return not _truthy(_evaluate(node.operand, context))
    if isinstance(node, _Match):
        subject = _evaluate(node.subject, context)
        if subject is None:
            return node.negated
        matched = node.pattern.search(_match_subject(subject)) is not None
        return matched != node.negated
    return _evaluate_binary(node, context)


def _evaluate_binary(node: _Binary, context: ConditionContext) -> object:
    left = _evaluate(node.left, context)
    if node.operator == "&&":
        return _truthy(left) and _truthy(_evaluate(node.right, context))
    if node.operator == "||":
        return _truthy(left) or _truthy(_evaluate(node.right, context))
    right = _evaluate(node.right, context)
    if node.operator == "==":
        return _equal(left, right)
    if node.operator == "!=":
        return not _equal(left, right)
    # includes
    if left is None:
        return False
    if not isinstance(left, list | tuple | set | frozenset):
        raise _ConditionProblem(
            f"includes needs a list on its left, not {_type_name(left)}", node.line, node.column
        )
    return any(_equal(item, right) for item in left)


def _match_subject(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _truthy(value: object) -> bool:
    return value is not None and value is not False


def _equal(left: object, right: object) -> bool:
    # True == 1 in Python, but not in the condition language.
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def _type_name(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, list | tuple | set | frozenset):
        return "a list"
    return type(value).__name__
