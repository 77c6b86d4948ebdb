"""Case-insensitive "contains" searches in SQL, with LIKE's wildcards taken literally."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """`column` contains `text`, ignoring case, on SQLite and PostgreSQL alike."""
    condition: ColumnElement[bool] = column.ilike(f"%{escape_like(text)}%", escape="\\")
    return condition
