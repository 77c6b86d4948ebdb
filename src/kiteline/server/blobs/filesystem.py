"""BlobStore on the local filesystem (the default): one file per key under a root directory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from kiteline.server.blobs.store import BlobWriteResult, DirectTransfers


class FilesystemBlobStore:
    #: No direct transfers: the server carries artifact bytes through its signed URLs.
    direct: DirectTransfers | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> BlobWriteResult:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        sha1, sha256, size = hashlib.sha1(usedforsecurity=False), hashlib.sha256(), 0
        handle = await asyncio.to_thread(partial.open, "wb")
        try:
            async for chunk in chunks:
                sha1.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        try:
            # Durable before it is in place: a log's chunks are deleted once this returns.
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            handle.close()
        await asyncio.to_thread(os.replace, partial, path)  # readers never see half a file
        return BlobWriteResult(size=size, sha1=sha1.hexdigest(), sha256=sha256.hexdigest())

    async def read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)
