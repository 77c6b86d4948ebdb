"""Where artifact bytes (and finished logs) live: a small BlobStore interface, chosen by
KITELINE_BLOB_URL: the filesystem (one machine, the default) or S3 (any number of replicas)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from kiteline.server.blobs.filesystem import FilesystemBlobStore
from kiteline.server.blobs.store import (
    BlobStore,
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
from kiteline.settings import Settings

__all__ = [
    "BlobStore",
    "BlobStoreUnavailable",
    "BlobWriteResult",
    "DirectTransfers",
    "Download",
    "FilesystemBlobStore",
    "PresignedPost",
    "StoredObject",
    "UploadCheck",
    "UploadForm",
    "content_disposition",
    "open_blob_store",
]


def open_blob_store(settings: Settings) -> BlobStore:
    """The store KITELINE_BLOB_URL names: `s3://bucket/prefix`, a `file://` URL or a path;
    unset, the filesystem under KITELINE_BLOB_DIR (default `<data dir>/blobs`)."""
    url = settings.blob_url
    if not url:
        return FilesystemBlobStore(settings.resolved_blob_dir)
    if url.startswith("s3://"):
        from kiteline.server.blobs.s3 import S3BlobStore  # boto3 is loaded only when used

        return S3BlobStore(url)
    if url.startswith("file://"):
        return FilesystemBlobStore(Path(unquote(urlsplit(url).path)))
    return FilesystemBlobStore(Path(url))
