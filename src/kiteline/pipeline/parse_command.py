"""Reading a command step: command, plugins, retry rules, matrix and the rest of its keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from kiteline.pipeline.expand import (
    combination_matches,
    matrix_combinations,
    matrix_placeholders,
    matrix_texts,
)
from kiteline.pipeline.models import (
    ANONYMOUS_DIMENSION,
    AutomaticRetryRule,
    CommandStep,
    ManualRetry,
    Matrix,
    MatrixAdjustment,
    Plugin,
    Retry,
)
from kiteline.pipeline.parse_common import LABEL_ALIASES, read_common, read_notify
from kiteline.pipeline.reader import Reader, as_bool, as_int, as_text

MATRIX_MAX_DIMENSIONS = 6
MATRIX_MAX_VALUES = 20
MATRIX_MAX_ADJUSTMENTS = 12
MATRIX_MAX_JOBS = 50
RETRY_MAX_LIMIT = 10
SIGNAL_REASONS = (
    "*",
    "none",
    "agent_incompatible",
    "agent_refused",
    "agent_stop",
    "cancel",
    "process_run_error",
    "signature_rejected",
    "stack_error",
)
_DIMENSION_NAME = re.compile(r"[a-zA-Z0-9_]+")


def read_command_step(
    reader: Reader, raw: dict[str, Any], seen_keys: dict[str, str]
) -> CommandStep:
    common = read_common(reader, raw, LABEL_ALIASES, seen_keys)
    parallelism = reader.integer("parallelism", minimum=1)
    matrix = _read_matrix(reader)
    if matrix is not None and parallelism is not None:
        reader.report("matrix", "can't be used together with parallelism")
    concurrency = reader.integer("concurrency", minimum=1)
    concurrency_group = reader.string("concurrency_group")
    if concurrency is not None and concurrency_group is None:
        reader.report("concurrency", "needs concurrency_group as well")
    if concurrency_group is not None and concurrency is None:
        reader.report("concurrency_group", "needs concurrency as well")
    method = reader.choice("concurrency_method", ("ordered", "eager"), "ordered")
    step = CommandStep(
        **common.fields(),
        command=_read_command(reader),
        env=reader.string_map("env"),
        agents=reader.agents("agents"),
        artifact_paths=reader.string_list("artifact_paths", separator=";"),
        parallelism=parallelism,
        matrix=matrix,
        retry=_read_retry(reader),
        soft_fail=reader.soft_fail(),
        timeout_in_minutes=reader.integer("timeout_in_minutes", minimum=1),
        skip=reader.skip(),
        concurrency=concurrency,
        concurrency_group=concurrency_group,
        concurrency_method="eager" if method == "eager" else "ordered",
        priority=reader.integer("priority"),
        cancel_on_build_failing=reader.boolean("cancel_on_build_failing"),
        plugins=_read_plugins(reader),
        notify=read_notify(reader),
        secrets=reader.string_or_map_list("secrets"),
    )
    if matrix is not None:
        _check_placeholders(reader, step, matrix)
    return step


def _read_command(reader: Reader) -> str:
    """`command` or `commands`, a string or a list of strings joined by newlines."""
    names = [name for name in ("command", "commands") if reader.get(name) is not None]
    if len(names) > 1:
        reader.report("commands", "can't be used together with command")
    if not names:
        return ""
    value = reader.get(names[0])
    texts = [as_text(item) for item in value] if isinstance(value, list) else [as_text(value)]
    if any(text is None for text in texts):
        reader.report(names[0], "must be a string or a list of strings")
        return ""
    return "\n".join(text for text in texts if text is not None)


def _read_plugins(reader: Reader) -> list[Plugin]:
    """Plugins as a list of one-key maps; `"name#v1"` becomes `{"name#v1": None}` and the
    deprecated map form (`{a: {...}, b: {...}}`) becomes a list."""
    value = reader.get("plugins")
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{str(name): config} for name, config in value.items()]
    if not isinstance(value, list):
        reader.report("plugins", "must be a list of plugins")
        return []
    plugins: list[Plugin] = []
    for index, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            plugins.append({item: None})
        elif isinstance(item, Mapping) and len(item) == 1:
            plugins.append({str(name): config for name, config in item.items()})
        else:
            reader.report(f"plugins[{index}]", 'must be "name#version" or {"name#version": config}')
    return plugins


def _read_retry(reader: Reader) -> Retry:
    retry = reader.mapping("retry")
    if retry is None:
        return Retry()
    return Retry(automatic=_read_automatic(retry), manual=_read_manual(retry))


def _read_automatic(retry: Reader) -> list[AutomaticRetryRule]:
    value = retry.get("automatic")
    if value is None:
        return []
    flag = as_bool(value)
    if flag is not None:
        return [AutomaticRetryRule()] if flag else []
    if isinstance(value, Mapping):
        return [_read_rule(retry.child("automatic", value))]
    if isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
        return [_read_rule(retry.item("automatic", i, item)) for i, item in enumerate(value)]
    retry.report("automatic", "must be true, false, a rule or a list of rules")
    return []


def _read_rule(rule: Reader) -> AutomaticRetryRule:
    limit = rule.integer("limit", minimum=0, maximum=RETRY_MAX_LIMIT)
    reason = rule.string("signal_reason")
    if reason is not None and reason not in SIGNAL_REASONS:
        rule.report("signal_reason", f"must be one of {', '.join(SIGNAL_REASONS)}")
    return AutomaticRetryRule(
        exit_status=_read_retry_exit_status(rule),
        signal=rule.string("signal"),
        signal_reason=reason,
        limit=2 if limit is None else limit,
    )


def _read_retry_exit_status(rule: Reader) -> Literal["*"] | list[int]:
    value = rule.get("exit_status")
    if value is None or value == "*":
        return "*"
    items = value if isinstance(value, list) else [value]
    statuses = [as_int(item) for item in items]
    if not items or any(status is None for status in statuses):
        rule.report("exit_status", 'must be "*", an integer or a list of integers')
        return "*"
    return [status for status in statuses if status is not None]


def _read_manual(retry: Reader) -> ManualRetry:
    value = retry.get("manual")
    if value is None:
        return ManualRetry()
    flag = as_bool(value)
    if flag is not None:
        return ManualRetry(allowed=flag)
    manual = retry.mapping("manual")
    if manual is None:
        return ManualRetry()
    return ManualRetry(
        allowed=manual.boolean("allowed", default=True),
        permit_on_passed=manual.boolean("permit_on_passed"),
        reason=manual.string("reason"),
    )


def _read_matrix(reader: Reader) -> Matrix | None:
    value = reader.get("matrix")
    if value is None:
        return None
    if isinstance(value, list):
        values = _read_values(reader, "matrix", value)
        matrix = Matrix(setup={ANONYMOUS_DIMENSION: values})
    elif isinstance(value, Mapping):
        spec = reader.child("matrix", value)
        setup = _read_setup(spec)
        if setup is None:
            return None
        matrix = Matrix(setup=setup, adjustments=_read_adjustments(spec, setup))
    else:
        reader.report("matrix", "must be a list of values or a map with setup")
        return None
    jobs = len(matrix_combinations(matrix))
    if jobs > MATRIX_MAX_JOBS:
        reader.report("matrix", f"makes {jobs} jobs; at most {MATRIX_MAX_JOBS} are allowed")
    return matrix


def _read_setup(spec: Reader) -> dict[str, list[str]] | None:
    setup = spec.get("setup")
    if isinstance(setup, list):
        return {ANONYMOUS_DIMENSION: _read_values(spec, "setup", setup)}
    if not isinstance(setup, Mapping) or not setup:
        spec.report("setup", "must be a list of values or a map of dimensions to lists of values")
        return None
    if len(setup) > MATRIX_MAX_DIMENSIONS:
        spec.report("setup", f"may have at most {MATRIX_MAX_DIMENSIONS} dimensions")
    dimensions: dict[str, list[str]] = {}
    for name, values in setup.items():
        if not _DIMENSION_NAME.fullmatch(str(name)):
            spec.report(f"setup.{name}", "is not a dimension name: use letters, digits and _")
        elif not isinstance(values, list):
            spec.report(f"setup.{name}", "must be a list of values")
        else:
            dimensions[str(name)] = _read_values(spec, f"setup.{name}", values)
    return dimensions


def _read_values(reader: Reader, key: str, values: list[Any]) -> list[str]:
    if not values:
        reader.report(key, "must have at least one value")
    if len(values) > MATRIX_MAX_VALUES:
        reader.report(key, f"may have at most {MATRIX_MAX_VALUES} values")
    result: list[str] = []
    for index, value in enumerate(values):
        text = _matrix_value(value)
        if text is None:
            reader.report(f"{key}[{index}]", "must be a string, number or boolean")
        else:
            result.append(text)
    return result


def _matrix_value(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return as_text(value)


def _read_adjustments(spec: Reader, setup: dict[str, list[str]]) -> list[MatrixAdjustment]:
    value = spec.items("adjustments", "{with, skip, soft_fail}")
    if len(value) > MATRIX_MAX_ADJUSTMENTS:
        spec.report("adjustments", f"may have at most {MATRIX_MAX_ADJUSTMENTS} entries")
    adjustments: list[MatrixAdjustment] = []
    for entry in spec.entries("adjustments", value, "with, skip and soft_fail"):
        combination = _read_with(entry, setup)
        if combination is not None:
            adjustments.append(
                MatrixAdjustment(
                    with_=combination,
                    skip=entry.skip() if entry.has("skip") else None,
                    soft_fail=entry.soft_fail() if entry.has("soft_fail") else None,
                )
            )
    return adjustments


def _read_with(entry: Reader, setup: dict[str, list[str]]) -> dict[str, str] | None:
    value = entry.get("with")
    if value is None:
        entry.report("with", "is required")
        return None
    if list(setup) == [ANONYMOUS_DIMENSION]:
        items = value if isinstance(value, list) else [value]
        text = _matrix_value(items[0]) if len(items) == 1 else None
        if text is None:
            entry.report("with", "must be one value of the matrix")
            return None
        return {ANONYMOUS_DIMENSION: text}
    if not isinstance(value, Mapping):
        entry.report("with", "must be a map of dimension names to values")
        return None
    combination: dict[str, str] = {}
    for name, item in value.items():
        text = _matrix_value(item)
        if str(name) not in setup:
            entry.report(f"with.{name}", f"is not a dimension of the matrix ({', '.join(setup)})")
        elif text is None:
            entry.report(f"with.{name}", "must be a string, number or boolean")
        else:
            combination[str(name)] = text
    existing = matrix_combinations(Matrix(setup=setup))
    is_new = not any(combination_matches(known.values, combination) for known in existing)
    if is_new and set(combination) != set(setup):
        entry.report("with", f"must name every dimension ({', '.join(setup)}) to add a combination")
    return combination


def _check_placeholders(reader: Reader, step: CommandStep, matrix: Matrix) -> None:
    for name in sorted(matrix_placeholders(matrix_texts(step)) - set(matrix.setup)):
        shown = "{{matrix}}" if name == ANONYMOUS_DIMENSION else f"{{{{matrix.{name}}}}}"
        reader.report("matrix", f"has no dimension for {shown}")
