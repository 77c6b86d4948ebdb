"""The BlobStore protocol every storage backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from kiteline.server.kit.errors import KitelineError


class BlobStoreUnavailable(KitelineError):
    """The store could not be reached or refused the call (S3 down, wrong credentials): a
    503 naming the reason, which agents retry, never a 500."""

    status = 503


@dataclass(frozen=True)
class BlobWriteResult:
    size: int
    sha1: str
    sha256: str


def content_disposition(name: str) -> str:
    """`attachment` with the file's name: an ASCII fallback, and the exact name encoded as
    RFC 6266 says (a header holds Latin-1 only, and a quote would end the name early)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(frozen=True)
class Download:
    """What a pre-signed GET serves: the key, and the name and type the client is given."""

    key: str
    filename: str
    content_type: str


@dataclass(frozen=True)
class PresignedPost:
    """A multipart/form-data POST that stores one object: `fields` first, the file last (in a
    field named `file`), sent to `url` with no other authorisation."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class UploadForm:
    """A direct upload to sign: the key, the exact size and the content type the form must
    carry, and the MD5 (hex) the bytes must have when the uploader declared one."""

    key: str
    size: int
    content_type: str
    md5: str | None = None


@dataclass(frozen=True)
class StoredObject:
    """What the store says of an object without reading it: its size and its ETag (the MD5
    of the bytes for a single-part, unencrypted upload)."""

    size: int
    etag: str


@dataclass(frozen=True)
class UploadCheck:
    """What a direct upload stored: its size and the checksum the store computed (`sha256` or
    `sha1`, whichever was asked for; both None when the store computes none)."""

    size: int
    sha1: str | None
    sha256: str | None


class DirectTransfers(Protocol):
    """Bytes that go straight between agents or clients and the store, never through the
    server: pre-signed URLs, and the check of what arrived. A store without it (the
    filesystem) has `direct = None` and the server carries the bytes itself."""

    async def presign_gets(self, downloads: Sequence[Download], expires_in: int) -> list[str]:
        """A pre-signed GET URL for each download, in order."""
        ...

    async def presign_posts(
        self, uploads: Sequence[UploadForm], expires_in: int
    ) -> list[PresignedPost]:
        """A pre-signed form POST for each upload, in order; with an MD5, the store refuses
        bytes that don't have it (`Content-MD5`)."""
        ...

    async def stored(self, key: str) -> StoredObject | None:
        """The object's size and ETag, or None when there is none."""
        ...

    async def finish_upload(self, upload_key: str, key: str, *, sha256: bool) -> UploadCheck | None:
        """Move what was uploaded under `upload_key` to `key` (or, the same key twice, leave
        it there), with its size and checksum as the store computes them; None when nothing
        was uploaded. The upload URL can still write `upload_key` afterwards, never `key`."""
        ...


class BlobStore(Protocol):
    #: Direct transfers, when the store can do them (None: the server carries the bytes).
    direct: DirectTransfers | None

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
