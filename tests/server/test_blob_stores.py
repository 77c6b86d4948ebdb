"""The BlobStore protocol, kept by both stores alike: the filesystem and S3 (moto's server);
and KITELINE_BLOB_URL choosing between them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from kiteline.server.blobs import BlobStore, FilesystemBlobStore, open_blob_store
from kiteline.server.blobs.s3 import S3BlobStore
from kiteline.settings import Settings
from tests.support.s3 import S3Service

BIG = bytes(range(256)) * 40_000  # 10 MB: past the S3 store's in-memory spool


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    s3: S3Service = request.getfixturevalue("s3")
    return S3BlobStore(s3.blob_url())


async def _chunks(data: bytes, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, 64 * 1024)])


async def test_write_read_replace_delete(store: BlobStore) -> None:
    written = await store.write("logs/a/b", _chunks(BIG))
    assert (written.size, written.sha1, written.sha256) == (
        len(BIG),
        hashlib.sha1(BIG).hexdigest(),
        hashlib.sha256(BIG).hexdigest(),
    )
    assert await store.exists("logs/a/b")
    assert await _read(store, "logs/a/b") == BIG
    await store.write("logs/a/b", _chunks(b"small"))
    assert await _read(store, "logs/a/b") == b"small"
    await store.delete("logs/a/b")
    assert not await store.exists("logs/a/b")
    await store.delete("logs/a/b")  # a missing key is not an error
    with pytest.raises(FileNotFoundError):
        await _read(store, "logs/a/b")


async def test_empty_blob_and_bad_keys(store: BlobStore) -> None:
    written = await store.write("empty", _chunks(b""))
    assert written.size == 0
    assert await _read(store, "empty") == b""
    for key in ("", "/abs", "a/../b"):
        with pytest.raises(ValueError, match="invalid blob key"):
            await store.write(key, _chunks(b"x"))


def test_only_s3_transfers_directly(tmp_path: Path, s3: S3Service) -> None:
    assert FilesystemBlobStore(tmp_path).direct is None
    assert S3BlobStore(s3.blob_url()).direct is not None


def test_blob_url_chooses_the_store(tmp_path: Path, s3: S3Service) -> None:
    default = open_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(default, FilesystemBlobStore)
    assert default.root == tmp_path / "blobs"
    by_path = open_blob_store(Settings(data_dir=tmp_path, blob_url=str(tmp_path / "x")))
    assert isinstance(by_path, FilesystemBlobStore) and by_path.root == tmp_path / "x"
    by_url = open_blob_store(Settings(data_dir=tmp_path, blob_url=f"file://{tmp_path}/y%20z"))
    assert isinstance(by_url, FilesystemBlobStore) and by_url.root == tmp_path / "y z"
    in_s3 = open_blob_store(Settings(blob_url="s3://kiteline-test/a/b/"))
    assert isinstance(in_s3, S3BlobStore)
    assert (in_s3.bucket, in_s3.object_key("artifacts/1")) == ("kiteline-test", "a/b/artifacts/1")
    bare = open_blob_store(Settings(blob_url="s3://kiteline-test"))
    assert isinstance(bare, S3BlobStore) and bare.object_key("k") == "k"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "an S3 store is s3://bucket or s3://bucket/prefix"),
        ("s3://bucket/p?region=x", "an S3 store is s3://bucket or s3://bucket/prefix"),
        ("gs://bucket", "not a blob store this server knows"),
    ],
)
def test_a_wrong_blob_url_is_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(blob_url=url)
