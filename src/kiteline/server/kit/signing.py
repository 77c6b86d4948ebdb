"""Pre-signed, expiring URLs (HMAC-SHA256 over method, path and expiry) for transfers that
carry no Authorization header: artifact uploads by agents and downloads after a REST 302."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

from kiteline.server.kit.errors import Forbidden


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _signature(self, method: str, path: str, expires: int) -> str:
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, method: str, path: str, ttl_seconds: int) -> str:
        """`expires=…&signature=…` granting `method` on `path` for `ttl_seconds`."""
        expires = int(time.time()) + ttl_seconds
        return urlencode({"expires": expires, "signature": self._signature(method, path, expires)})

    def verify(self, method: str, path: str, expires: str | None, signature: str | None) -> None:
        if not expires or not signature or not expires.isdigit():
            raise Forbidden("This URL needs a signature: ask the API for a new one")
        expected = self._signature(method, path, int(expires))
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("The URL's signature does not match")
        if int(expires) < time.time():
            raise Forbidden("The URL has expired: ask the API for a new one")


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """KITELINE_SECRET_KEY when set (required for several replicas), else a key kept in the
    data directory so that signed URLs survive restarts."""
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()
