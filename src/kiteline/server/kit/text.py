"""Checks of names clients give (branches, keys, contexts, labels, artifact paths): text that
ends up in headers, file names, environment variables and logs must be plain and printable."""

from __future__ import annotations

import posixpath
import re

from kiteline.server.kit.errors import ValidationFailed

#: C0 controls but tab, and DEL: NUL breaks headers, environments and PostgreSQL text;
#: newlines and escapes make one name print as several or repaint a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def control_character_problem(value: str) -> str | None:
    """What is wrong with `value` if it holds a control character, else None."""
    match = _CONTROL.search(value)
    if match is None:
        return None
    return (
        f"must not contain control characters (found U+{ord(match.group()):04X} "
        f"at position {match.start()})"
    )


def check_plain(field: str, value: str | None) -> None:
    """422 naming `field` when `value` holds a control character."""
    if value is not None and (problem := control_character_problem(value)) is not None:
        raise ValidationFailed.field(field, problem)


def check_plain_keys(field: str, keys: object) -> None:
    """Every key of a mapping (meta-data, env names) plain; the error names the key."""
    if not isinstance(keys, dict):
        return
    for key in keys:
        if isinstance(key, str) and (problem := control_character_problem(key)) is not None:
            raise ValidationFailed.field(field, f"key {key!r} {problem}")


def relative_path(field: str, value: str) -> str:
    """A relative path that stays inside its root, `/`-separated and normalised (`a/./b` is
    `a/b`); absolute paths, drive letters (`C:/…`) and `..` escapes are refused."""
    check_plain(field, value)
    slashed = value.replace("\\", "/")
    cleaned = posixpath.normpath(slashed) if slashed.strip() else ""
    if cleaned in ("", "."):
        raise ValidationFailed.field(field, f"must be a relative file path, got {value!r}")
    if slashed.startswith("/") or _WINDOWS_DRIVE.match(slashed):
        raise ValidationFailed.field(field, f"must be a relative path, not absolute: {value!r}")
    if cleaned == ".." or cleaned.startswith("../"):
        raise ValidationFailed.field(field, f"must stay inside its directory (no ..): {value!r}")
    return cleaned
