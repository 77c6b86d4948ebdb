"""BlobStore on S3 or any S3-compatible service (MinIO, Ceph, …): one object per key under a
prefix, with pre-signed URLs so that artifact bytes go straight between agents or clients and
the bucket. boto3 is blocking: every call that may touch the network (requests, and the
credential lookup a signature can trigger) runs in a thread, never on the event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kiteline.server.blobs.store import (
    BlobStoreUnavailable,
    BlobWriteResult,
    DirectTransfers,
    Download,
    PresignedPost,
    StoredObject,
    UploadCheck,
    UploadForm,
    content_disposition,
)

#: Bytes held in memory by `write` before it spills to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024
#: Requests in flight to the service from one process (botocore's pool; its default is 10).
MAX_CONNECTIONS = 32
MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Location:
    """`s3://bucket/prefix` split into its bucket and key prefix."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r}: an s3:// URL has no query or fragment")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")

    def key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key


def s3_client(max_connections: int = MAX_CONNECTIONS) -> Any:
    """A client configured the usual AWS way: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for
    another service than AWS (path-style addressing then, as MinIO and Ceph expect),
    `AWS_REGION` / `AWS_DEFAULT_REGION`, and the standard credential chain."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
        max_pool_connections=max_connections,
        retries={"mode": "standard"},
        # Checksums only where S3 requires them: not every S3-compatible service takes the
        # CRC32 trailers newer botocore adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None, region_name=region or None, config=config
    )


T = TypeVar("T")


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in MISSING


async def _call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`function` in a thread; S3 being unreachable or refusing is a BlobStoreUnavailable
    (a missing key stays a ClientError, for the caller to answer)."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except ClientError as error:
        if _missing(error):
            raise
        raise BlobStoreUnavailable(
            f"The artifact store (S3) refused the request: {error}"
        ) from error
    except BotoCoreError as error:
        raise BlobStoreUnavailable(
            f"The artifact store (S3) could not be reached: {error}"
        ) from error


def _hex(checksum: str | None) -> str | None:
    return base64.b64decode(checksum).hex() if checksum else None


class S3BlobStore:
    def __init__(self, url: str, client: Any | None = None) -> None:
        self.location = S3Location(url)
        self.bucket = self.location.bucket
        self._client = client if client is not None else s3_client()
        self.direct: DirectTransfers | None = S3DirectTransfers(self)

    def object_key(self, key: str) -> str:
        return self.location.key(key)

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> BlobWriteResult:
        """Spooled (to a temporary file past SPOOL_BYTES), then sent in one upload (multipart
        for large ones): S3 never shows a half-written object."""
        name = self.object_key(key)
        sha1, sha256, size = hashlib.sha1(usedforsecurity=False), hashlib.sha256(), 0
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            async for chunk in chunks:
                sha1.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
                if spool.tell() + len(chunk) > SPOOL_BYTES:
                    await asyncio.to_thread(spool.write, chunk)
                else:
                    spool.write(chunk)
            spool.seek(0)
            await _call(self._client.upload_fileobj, spool, self.bucket, name)
        finally:
            spool.close()
        return BlobWriteResult(size=size, sha1=sha1.hexdigest(), sha256=sha256.hexdigest())

    async def read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        name = self.object_key(key)
        try:
            answer = await _call(self._client.get_object, Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(key) from error
            raise
        body = answer["Body"]
        try:
            while chunk := await _call(body.read, chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        name = self.object_key(key)
        await _call(self._client.delete_object, Bucket=self.bucket, Key=name)

    async def exists(self, key: str) -> bool:
        return await self._head(self.object_key(key)) is not None

    async def _head(self, name: str, **extra: Any) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await _call(
                self._client.head_object, Bucket=self.bucket, Key=name, **extra
            )
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return found


class S3DirectTransfers:
    """Pre-signed URLs (computed locally, in a thread: signing may look credentials up) and
    the check of what an agent uploaded, done by S3 itself (see `finish_upload`)."""

    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        self._client = store._client

    async def presign_gets(self, downloads: Sequence[Download], expires_in: int) -> list[str]:
        def sign() -> list[str]:
            return [
                self._client.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": self._store.bucket,
                        "Key": self._store.object_key(download.key),
                        "ResponseContentDisposition": content_disposition(download.filename),
                        "ResponseContentType": download.content_type,
                    },
                    ExpiresIn=expires_in,
                )
                for download in downloads
            ]

        return await _call(sign) if downloads else []

    async def presign_posts(
        self, uploads: Sequence[UploadForm], expires_in: int
    ) -> list[PresignedPost]:
        def sign() -> list[PresignedPost]:
            signed = []
            for upload in uploads:
                # The policy pins the key, the exact size and the type (and, with an MD5,
                # `Content-MD5`, which S3 checks the bytes against on arrival): the URL can
                # store these bytes at this key and nothing else.
                fields = {"Content-Type": upload.content_type}
                if upload.md5 is not None:
                    fields["Content-MD5"] = base64.b64encode(bytes.fromhex(upload.md5)).decode()
                conditions: list[Any] = [{name: value} for name, value in fields.items()]
                conditions.append(["content-length-range", upload.size, upload.size])
                post = self._client.generate_presigned_post(
                    self._store.bucket,
                    self._store.object_key(upload.key),
                    Fields=fields,
                    Conditions=conditions,
                    ExpiresIn=expires_in,
                )
                signed.append(PresignedPost(url=post["url"], fields=dict(post["fields"])))
            return signed

        return await _call(sign) if uploads else []

    async def stored(self, key: str) -> StoredObject | None:
        head = await self._store._head(self._store.object_key(key))
        if head is None:
            return None
        return StoredObject(size=int(head["ContentLength"]), etag=str(head["ETag"]).strip('"'))

    async def finish_upload(self, upload_key: str, key: str, *, sha256: bool) -> UploadCheck | None:
        """S3 keeps a checksum only when asked: the upload is copied to its final key with the
        checksum requested (inside S3; the bytes never come to the server), the exact version
        whose size was read (`CopySourceIfMatch`), then the upload key is removed (a copy onto
        itself, when both keys are one, keeps it)."""
        source, target = self._store.object_key(upload_key), self._store.object_key(key)
        head = await self._store._head(source)
        if head is None:
            return None
        field = "ChecksumSHA256" if sha256 else "ChecksumSHA1"
        try:
            copied = await _call(
                self._client.copy_object,
                Bucket=self._store.bucket,
                Key=target,
                CopySource={"Bucket": self._store.bucket, "Key": source},
                CopySourceIfMatch=head["ETag"],
                ChecksumAlgorithm="SHA256" if sha256 else "SHA1",
                MetadataDirective="REPLACE",
                ContentType=head.get("ContentType") or "application/octet-stream",
            )
        except ClientError as error:
            if _missing(error):
                return None
            raise
        if source != target:
            await _call(self._client.delete_object, Bucket=self._store.bucket, Key=source)
        checksum = _hex(copied.get("CopyObjectResult", {}).get(field))
        size = int(head["ContentLength"])
        if sha256:
            return UploadCheck(size=size, sha1=None, sha256=checksum)
        return UploadCheck(size=size, sha1=checksum, sha256=None)
