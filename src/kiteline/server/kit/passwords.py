"""Password hashes (argon2id) for signing in to the web UI, computed off the event loop."""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 40 ms of one
# core per hash when idle, cheap for a sign-in, costly for guessing. argon2-cffi's defaults
# (64 MiB, 3 passes, 4 lanes) took 0.7 s on a busy 2-core machine. Hashes record their
# parameters, so raising them later still verifies the old ones.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

MIN_LENGTH = 8
MAX_LENGTH = 1024


@functools.cache
def _unusable_hash() -> str:
    """Checked when the user is unknown or has no password, so that a wrong email takes as
    long as a wrong password and the response time does not tell which accounts exist. Made
    on first use: every process importing this module would otherwise pay for a hash."""
    return _hasher.hash(secrets.token_hex(16))


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
    matched = await asyncio.to_thread(_verify, password_hash or _unusable_hash(), password)
    return matched and password_hash is not None
