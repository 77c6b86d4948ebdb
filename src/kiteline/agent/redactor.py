"""Secret redaction: replaces values of secret-looking env vars in the job log before upload."""

from __future__ import annotations

from collections.abc import Mapping

from kiteline.agent.process import Output

REDACTED = b"[REDACTED]"
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

    def add_secrets_from_env(self, env: Mapping[str, str]) -> None:
        found = {
            value.encode()
            for name, value in env.items()
            if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH
        }
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(found | set(self._secrets), key=len, reverse=True)

    def write(self, data: bytes) -> None:
        text = self._redact(self._pending + data)
        held = self._partial_secret_length(text)
        self._pending = text[len(text) - held :] if held else b""
        if len(text) > held:
            self._output(text[: len(text) - held])

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, b""
            self._output(pending)

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
