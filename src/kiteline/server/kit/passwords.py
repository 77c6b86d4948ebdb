"""Password hashes (argon2id) for signing in to the web UI, computed off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes) take tens of
# milliseconds of CPU per hash: cheap for one sign-in, costly for guessing.
_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 1024

# Checked when the user is unknown or has no password, so that a wrong email takes as long
# as a wrong password and the response time does not tell which accounts exist.
_UNUSABLE_HASH = _hasher.hash(secrets.token_hex(16))


def password_problem(password: str) -> str | None:
    """Why `password` can't be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None


def generate_password() -> str:
    """A password for a first start: 24 URL-safe characters (about 143 bits)."""
    return secrets.token_urlsafe(18)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; an absent hash costs the same time and never matches."""
    matched = await asyncio.to_thread(_verify, password_hash or _UNUSABLE_HASH, password)
    return matched and password_hash is not None
