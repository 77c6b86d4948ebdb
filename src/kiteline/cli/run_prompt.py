"""Answering a block step at the terminal: one question per field, with the field's default
(or the `--unblock` value) offered; blocking calls, meant for a thread of their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.prompt import Confirm, Prompt
from rich.text import Text

from kiteline.cli.display import job_label
from kiteline.client.models import Job


def field_value(field: Mapping[str, Any], text: str) -> str | list[str]:
    """`--unblock`/prompt text as the API takes it: a multiple select's values are split on
    commas."""
    if field.get("type") == "select" and field.get("multiple"):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def preset_fields(job: Job, preset: Mapping[str, str]) -> dict[str, Any]:
    """The `--unblock` answers for this block's fields."""
    return {
        field["key"]: field_value(field, preset[field["key"]])
        for field in job.fields
        if field["key"] in preset
    }


def ask(
    console: Console, job: Job, preset: Mapping[str, str], *, problem: str | None
) -> dict[str, Any] | None:
    """The block's field values, asked for those `preset` lacks; None when declined."""
    console.print(Text.assemble(("⏸ ", "bold magenta"), (job_label(job), "bold")))
    if job.prompt:
        console.print(Text(job.prompt))
    if problem:
        console.print(Text(problem, style="red"))
    fields = job.fields
    if not fields:
        return {} if Confirm.ask("Continue?", console=console, default=True) else None
    answers = preset_fields(job, preset)
    for field in fields:
        if field["key"] not in answers:
            answers[field["key"]] = _ask_field(console, field)
    return {key: value for key, value in answers.items() if value not in ("", [])}


def _ask_field(console: Console, field: Mapping[str, Any]) -> str | list[str]:
    question = str(field.get("text") or field.get("select") or field["key"])
    if field.get("hint"):
        console.print(Text(str(field["hint"]), style="dim"))
    default = field.get("default")
    if isinstance(default, list):
        default = ",".join(str(value) for value in default)
    choices = [str(option["value"]) for option in field.get("options") or []]
    for option in field.get("options") or []:
        console.print(Text.assemble("  ", (str(option["value"]), "bold"), f"  {option['label']}"))
    multiple = bool(choices) and bool(field.get("multiple"))
    if multiple:
        question += " (values separated by commas)"
    while True:
        answer = Prompt.ask(
            question,
            console=console,
            choices=choices if choices and not multiple else None,
            default=default if default is not None else "",
            show_default=default is not None,
        ).strip()
        if not answer and field.get("required", True):
            console.print(Text(f"{field['key']} is required", style="red"))
            continue
        value = field_value(field, answer)
        unknown = [v for v in value if v not in choices] if multiple else []
        if unknown:
            console.print(Text(f"{unknown[0]!r} is not one of {', '.join(choices)}", style="red"))
            continue
        return value
