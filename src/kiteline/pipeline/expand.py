"""One command step → the jobs it makes: matrix combinations, or `parallelism` copies."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from kiteline.pipeline.errors import PipelineError
from kiteline.pipeline.models import (
    ANONYMOUS_DIMENSION,
    CommandStep,
    Matrix,
    Plugin,
    Skip,
    SoftFail,
)

# {{matrix}} or {{matrix.dimension}}, spaces allowed inside the braces.
_PLACEHOLDER = re.compile(r"\{\{\s*matrix(?:\.([A-Za-z0-9_]+))?\s*\}\}")
_PARALLEL_PLACEHOLDER = re.compile(r"%([nNt])")


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One job of a command step, with matrix values already put in."""

    label: str | None
    command: str
    env: dict[str, str]
    agents: dict[str, str]
    plugins: list[Plugin]
    matrix: dict[str, str] | None = None
    parallel_job: int | None = None
    parallel_job_count: int | None = None
    skip: Skip = False
    soft_fail: SoftFail = False


@dataclass(frozen=True, kw_only=True)
class MatrixCombination:
    values: dict[str, str]
    skip: Skip | None = None
    soft_fail: SoftFail | None = None


def expand_command_step(step: CommandStep) -> list[JobSpec]:
    """The step's jobs in order. No matrix and no parallelism: exactly one job."""
    if step.matrix is not None and step.parallelism is not None:
        raise PipelineError.single("matrix and parallelism can't be used on the same step")
    if step.matrix is not None:
        return [_matrix_job(step, combination) for combination in matrix_combinations(step.matrix)]
    base = _job(step, {}, matrix=None, skip=None, soft_fail=None)
    if step.parallelism is None:
        return [base]
    count = step.parallelism
    return [
        replace(
            base,
            label=parallel_label(base.label, index, count),
            parallel_job=index,
            parallel_job_count=count,
        )
        for index in range(count)
    ]


def parallel_label(label: str | None, index: int, count: int) -> str | None:
    """A parallel job's label as Buildkite shows it: `%n` its index from 0, `%N` from 1, `%t`
    the number of jobs (`Test %N of %t` → `Test 2 of 5`)."""
    if label is None:
        return None
    values = {"n": str(index), "N": str(index + 1), "t": str(count)}
    return _PARALLEL_PLACEHOLDER.sub(lambda match: values[match.group(1)], label)


def matrix_combinations(matrix: Matrix) -> list[MatrixCombination]:
    """Every combination of the setup's dimensions, in order, then the adjustments: one that
    matches existing combinations changes their skip/soft_fail, one that matches none adds it."""
    dimensions = list(matrix.setup)
    combinations = [
        MatrixCombination(values=dict(zip(dimensions, values, strict=True)))
        for values in itertools.product(*matrix.setup.values())
    ]
    for adjustment in matrix.adjustments:
        matched = [
            index
            for index, combination in enumerate(combinations)
            if combination_matches(combination.values, adjustment.with_)
        ]
        for index in matched:
            current = combinations[index]
            combinations[index] = MatrixCombination(
                values=current.values,
                skip=adjustment.skip if adjustment.skip is not None else current.skip,
                soft_fail=(
                    adjustment.soft_fail if adjustment.soft_fail is not None else current.soft_fail
                ),
            )
        if not matched and set(adjustment.with_) == set(dimensions):
            combinations.append(
                MatrixCombination(
                    values={name: adjustment.with_[name] for name in dimensions},
                    skip=adjustment.skip,
                    soft_fail=adjustment.soft_fail,
                )
            )
    return combinations


def matrix_placeholders(texts: Iterable[str]) -> set[str]:
    """The dimensions that `texts` refer to (``""`` for a bare `{{matrix}}`)."""
    return {
        match.group(1) or ANONYMOUS_DIMENSION
        for text in texts
        for match in _PLACEHOLDER.finditer(text)
    }


def matrix_texts(step: CommandStep) -> list[str]:
    """Every string of the step that matrix values are put into."""
    texts = [step.label or "", step.command]
    texts += list(step.env.values()) + list(step.agents.values())
    texts += list(_strings(step.plugins))
    return texts


def combination_matches(values: dict[str, str], wanted: dict[str, str]) -> bool:
    """Whether a combination has every value an adjustment's `with` names."""
    return all(values.get(name) == value for name, value in wanted.items())


def _matrix_job(step: CommandStep, combination: MatrixCombination) -> JobSpec:
    return _job(
        step,
        combination.values,
        matrix=dict(combination.values),
        skip=combination.skip,
        soft_fail=combination.soft_fail,
    )


def _job(
    step: CommandStep,
    values: dict[str, str],
    *,
    matrix: dict[str, str] | None,
    skip: Skip | None,
    soft_fail: SoftFail | None,
) -> JobSpec:
    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda match: _value(match, values), text)

    return JobSpec(
        label=fill(step.label) if step.label is not None else None,
        command=fill(step.command),
        env={name: fill(value) for name, value in step.env.items()},
        agents={name: fill(value) for name, value in step.agents.items()},
        plugins=[
            {fill(name): _fill_deep(config, fill) for name, config in plugin.items()}
            for plugin in step.plugins
        ],
        matrix=matrix,
        skip=step.skip or (skip if skip is not None else False),
        soft_fail=soft_fail if soft_fail is not None else step.soft_fail,
    )


def _value(match: re.Match[str], values: dict[str, str]) -> str:
    return values.get(match.group(1) or ANONYMOUS_DIMENSION, match.group(0))


def _fill_deep(value: object, fill: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return fill(value)
    if isinstance(value, list):
        return [_fill_deep(item, fill) for item in value]
    if isinstance(value, dict):
        return {_fill_deep(key, fill): _fill_deep(item, fill) for key, item in value.items()}
    return value


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
