"""Where artifact bytes (and, later, finished logs) live: a small BlobStore interface, chosen by
configuration, with a filesystem implementation for one machine."""

from kiteline.server.blobs.filesystem import FilesystemBlobStore
from kiteline.server.blobs.store import BlobStore, BlobWriteResult

__all__ = ["BlobStore", "BlobWriteResult", "FilesystemBlobStore"]
