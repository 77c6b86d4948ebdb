"""Typed reads from one mapping of a pipeline document, turning wrong types into issues."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kiteline.pipeline.errors import PipelineIssue, StepRef
from kiteline.pipeline.models import ExitStatus, Skip, SoftFail

SKIP_REASON_MAX = 70


def as_bool(value: object) -> bool | None:
    """`true`/`false`, or the strings "true"/"false" (the schema allows both); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_int(value: object) -> int | None:
    """An integer, or a string of one (`"10"`); never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_text(value: object) -> str | None:
    """A string; numbers become their text (YAML reads `label: 1` as a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_env_value(value: object) -> str | None:
    """An environment value: any scalar, as the text a shell would see."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return as_text(value)


def as_exit_status(value: object) -> ExitStatus | None:
    if value == "*":
        return "*"
    return as_int(value)


class Reader:
    """Reads keys of one mapping; every problem is appended to `issues`, named by `ref`."""

    def __init__(
        self,
        data: Mapping[str, Any],
        ref: StepRef,
        issues: list[PipelineIssue],
        prefix: str = "",
    ) -> None:
        self.data = data
        self.ref = ref
        self.issues = issues
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def report(self, key: str, expectation: str) -> None:
        """Record that `key` is wrong: `expectation` completes "<key> …"."""
        name = self.name(key)
        self.issues.append(self.ref.issue(name, f"{name} {expectation}"))

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def present(self, *keys: str) -> str | None:
        """The first of `keys` (a key and its aliases) that is present."""
        return next((key for key in keys if key in self.data), None)

    def child(self, key: str, data: Mapping[str, Any]) -> Reader:
        return Reader(data, self.ref, self.issues, f"{self.name(key)}.")

    def item(self, key: str, index: int, data: Mapping[str, Any]) -> Reader:
        return Reader(data, self.ref, self.issues, f"{self.name(key)}[{index}].")

    def mapping(self, key: str) -> Reader | None:
        """A nested map as its own reader; None when absent or null."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.report(key, "must be a map")
            return None
        return self.child(key, value)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                self.report(key, "is required")
            return None
        text = as_text(value)
        if text is None:
            self.report(key, "must be a string")
        elif required and not text.strip():
            self.report(key, "must not be empty")
        return text

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        result = as_bool(value)
        if result is None:
            self.report(key, "must be true or false")
            return default
        return result

    def integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        number = as_int(value)
        too_small = number is not None and minimum is not None and number < minimum
        too_big = number is not None and maximum is not None and number > maximum
        if number is None or too_small or too_big:
            self.report(key, f"must be {_describe_range(minimum, maximum)}")
            return None
        return number

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key)
        if value is None:
            return default
        if value not in choices:
            options = ", ".join(f'"{choice}"' for choice in choices)
            self.report(key, f"must be one of {options}")
            return default
        return str(value)

    def items(self, key: str, what: str) -> list[Any]:
        """The list at `key`, empty when absent; anything but a list is reported ("must be a
        list of `what`") and read as empty."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.report(key, f"must be a list of {what}")
            return []
        return value

    def entries(self, key: str, values: list[Any], what: str) -> Iterator[Reader]:
        """A reader for each map in `values` (the list at `key`); any other item is reported
        ("must be a map with `what`") and passed over."""
        for index, item in enumerate(values):
            if isinstance(item, Mapping):
                yield self.item(key, index, item)
            else:
                self.report(f"{key}[{index}]", f"must be a map with {what}")

    def string_list(self, key: str, *, separator: str | None = None) -> list[str]:
        """A list of strings, or one string split on `separator` (None: on whitespace)."""
        value = self.get(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        texts = [as_text(item) for item in items]
        if any(text is None for text in texts):
            self.report(key, "must be a string or a list of strings")
            return []
        parts = [part.strip() for text in texts if text for part in text.split(separator)]
        return [part for part in parts if part]

    def string_map(self, key: str) -> dict[str, str]:
        """A map of names to scalar values, each kept as text."""
        value = self.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.report(key, "must be a map of names to values")
            return {}
        result: dict[str, str] = {}
        for name, item in value.items():
            text = as_env_value(item)
            if text is None:
                self.report(f"{key}.{name}", "must be a string, number or boolean")
            else:
                result[str(name)] = text
        return result

    def agents(self, key: str) -> dict[str, str]:
        """`{queue: x}` or `["queue=x"]`, as a map."""
        value = self.get(key)
        if not isinstance(value, list):
            return self.string_map(key)
        result: dict[str, str] = {}
        for index, item in enumerate(value):
            name, sep, tag = str(item).partition("=")
            if not isinstance(item, str) or not sep or not name.strip():
                self.report(f"{key}[{index}]", 'must look like "name=value"')
            else:
                result[name.strip()] = tag.strip()
        return result

    def _flag(self, key: str) -> tuple[bool | None, Any]:
        """`key` as true or false (false when absent), or None and the value when it is
        something else (`skip`'s reason, `soft_fail`'s exit statuses)."""
        value = self.get(key)
        return (False if value is None else as_bool(value)), value

    def skip(self, key: str = "skip") -> Skip:
        flag, value = self._flag(key)
        if flag is not None:
            return flag
        if not isinstance(value, str):
            self.report(key, "must be true, false or a reason")
            return False
        if len(value) > SKIP_REASON_MAX:
            self.report(key, f"reason must be at most {SKIP_REASON_MAX} characters")
        return value

    def soft_fail(self, key: str = "soft_fail") -> SoftFail:
        flag, value = self._flag(key)
        if flag is not None:
            return flag
        if not isinstance(value, list) or not value:
            self.report(key, 'must be true, false or a list of {exit_status: <int or "*">}')
            return False
        statuses: list[ExitStatus] = []
        for index, item in enumerate(value):
            raw = item.get("exit_status") if isinstance(item, Mapping) else item
            status = as_exit_status(raw)
            if status is None:
                self.report(f"{key}[{index}].exit_status", 'must be an integer or "*"')
            else:
                statuses.append(status)
        return statuses

    def string_or_map_list(self, key: str) -> list[str] | dict[str, str]:
        """`secrets`: a list of names, or a map of variable names to secret names."""
        if isinstance(self.get(key), Mapping):
            return self.string_map(key)
        return self.string_list(key)


def _describe_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum is not None:
        return f"an integer of at least {minimum}"
    if maximum is not None:
        return f"an integer of at most {maximum}"
    return "an integer"
