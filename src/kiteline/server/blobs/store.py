"""The BlobStore protocol every storage backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BlobWriteResult:
    size: int
    sha1: str
    sha256: str


class BlobStore(Protocol):
    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> BlobWriteResult:
        """Store the bytes under `key` (replacing any), hashing them on the way."""
        ...

    def read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The bytes under `key`, in chunks; FileNotFoundError when missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...
