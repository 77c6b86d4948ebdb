"""Random tokens and the one-way hashes under which they are stored."""

from __future__ import annotations

import hashlib
import secrets


def generate_token(prefix: str) -> str:
    """A URL-safe token with a recognisable prefix (`bkua_`, `bkct_`, `bkaj_`...)."""
    return prefix + secrets.token_hex(20)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
