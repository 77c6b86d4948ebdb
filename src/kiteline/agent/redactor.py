"""Secret redaction: replaces values of secret-looking env vars, and values a job added with
`redactor add`, in the job log before upload."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from kiteline.agent.process import Output

REDACTED = b"[REDACTED]"
REDACTOR_FILE_ENV = "BUILDKITE_REDACTOR_FILE"
"""Where `redactor add` appends values: one JSON string per line, in the job's scratch dir."""
SECRET_NAME_SUFFIXES = ("_TOKEN", "_SECRET", "_PASSWORD", "_KEY")
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words and numbers


def is_secret_name(name: str) -> bool:
    """`*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_KEY` (so also `*_ACCESS_KEY`, `*_PRIVATE_KEY`)."""
    return name.upper().endswith(SECRET_NAME_SUFFIXES)


class Redactor:
    """A log filter: writes reach `output` with secrets replaced by `[REDACTED]`.

    A secret may arrive split across two reads, so the end of a write that could be the start
    of a secret is held back until the next write (or `flush`) decides.
    """

    def __init__(self, output: Output) -> None:
        self._output = output
        self._secrets: list[bytes] = []
        self._pending = b""
        self._watched: Path | None = None
        self._watched_offset = 0

    def add_secrets_from_env(self, env: Mapping[str, str]) -> None:
        self.add_secrets(
            value
            for name, value in env.items()
            if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH
        )

    def add_secrets(self, values: Iterable[str]) -> None:
        found = {value.encode() for value in values if value}
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(found | set(self._secrets), key=len, reverse=True)

    def watch(self, path: Path) -> None:
        """Also redact values appended to `path` (see `append_redactions`), read as they come:
        a value added before a process prints it is redacted from that output."""
        self._watched = path
        self._watched_offset = 0

    def write(self, data: bytes) -> None:
        self._read_watched()
        text = self._redact(self._pending + data)
        held = self._partial_secret_length(text)
        self._pending = text[len(text) - held :] if held else b""
        if len(text) > held:
            self._output(text[: len(text) - held])

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, b""
            self._output(pending)

    def _read_watched(self) -> None:
        # The file only grows, so its size says whether there is anything new; a line is
        # taken only once its newline is written.
        if self._watched is None:
            return
        try:
            if os.stat(self._watched).st_size <= self._watched_offset:
                return
            with self._watched.open("rb") as file:
                file.seek(self._watched_offset)
                added = file.read()
        except OSError:
            return
        complete = added[: added.rfind(b"\n") + 1]
        self._watched_offset += len(complete)
        self.add_secrets(_decode_lines(complete))

    def _redact(self, text: bytes) -> bytes:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _partial_secret_length(self, text: bytes) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some secret."""
        longest = 0
        for secret in self._secrets:
            for length in range(min(len(secret) - 1, len(text)), longest, -1):
                if text.endswith(secret[:length]):
                    longest = length
                    break
        return longest


def append_redactions(path: Path, values: Iterable[str]) -> None:
    """Add values for the job's Redactor (watching `path`) to redact from now on."""
    lines = "".join(json.dumps(value) + "\n" for value in values if value)
    # One write of whole lines: the Redactor never reads half a value as a value.
    with path.open("a", encoding="utf-8") as file:
        file.write(lines)


def _decode_lines(data: bytes) -> list[str]:
    values = []
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, str):
            values.append(value)
    return values
