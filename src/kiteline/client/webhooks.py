"""Webhook signatures: how Kiteline signs its requests and how a receiver checks them.

Three modes, chosen per webhook:

- `sha256` (the default): `X-Buildkite-Signature: sha256=<hex HMAC-SHA256(token, body)>`;
- `signature` (Buildkite's): `X-Buildkite-Signature: timestamp=T,signature=<hex
  HMAC-SHA256(token, "T.body")>`, where T is the Unix time of the attempt;
- `token`: `X-Buildkite-Token: <token>`.

A receiver calls `verify_webhook_request(body, headers, token)` with the raw body bytes. Only
the timestamped mode can refuse a replay by itself (a timestamp outside the tolerance); with
the others, remember the `X-Buildkite-Request` ids already handled, which every retry of one
delivery repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Buildkite-Signature"
TOKEN_HEADER = "X-Buildkite-Token"
DEFAULT_TOLERANCE_SECONDS = 300.0


class InvalidWebhook(Exception):
    """The request is not a genuine, fresh webhook for this token."""


def hmac_sha256(token: str, message: bytes) -> str:
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def sha256_signature(token: str, body: bytes) -> str:
    """The value of `X-Buildkite-Signature` in `sha256` mode."""
    return f"sha256={hmac_sha256(token, body)}"


def timestamped_signature(token: str, body: bytes, timestamp: int) -> str:
    """The value of `X-Buildkite-Signature` in Buildkite's `signature` mode."""
    digest = hmac_sha256(token, str(timestamp).encode() + b"." + body)
    return f"timestamp={timestamp},signature={digest}"


def verify_webhook_request(
    body: bytes,
    headers: Mapping[str, str],
    token: str,
    *,
    mode: str | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check the request's signature or token; returns the mode it used, raises InvalidWebhook.

    `mode` insists on one of `sha256`, `signature`, `token` (any of them when None), so that a
    receiver set up for signatures never accepts a plain token. A timestamped signature older
    or newer than `tolerance_seconds` is refused as a replay.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    presented = lowered.get(TOKEN_HEADER.lower())
    if signature is not None and signature.startswith("sha256="):
        found = "sha256"
        valid = hmac.compare_digest(signature, sha256_signature(token, body))
    elif signature is not None:
        found = "signature"
        valid = _timestamped_valid(signature, body, token, tolerance_seconds, now)
    elif presented is not None:
        found = "token"
        valid = hmac.compare_digest(presented.encode(), token.encode())
    else:
        raise InvalidWebhook(f"neither {SIGNATURE_HEADER} nor {TOKEN_HEADER} is present")
    if mode is not None and found != mode:
        raise InvalidWebhook(f"expected a {mode} webhook, got {found}")
    if not valid:
        raise InvalidWebhook(f"the {found} does not match this token")
    return found


def _timestamped_valid(
    header: str, body: bytes, token: str, tolerance_seconds: float, now: float | None
) -> bool:
    parts = dict(part.strip().partition("=")[::2] for part in header.split(","))
    timestamp, digest = parts.get("timestamp", ""), parts.get("signature", "")
    if not timestamp.isdigit() or not digest:
        raise InvalidWebhook(f"malformed {SIGNATURE_HEADER}: {header!r}")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_seconds:
        raise InvalidWebhook(
            f"the signature's timestamp is {age:.0f}s away from now, more than the "
            f"{tolerance_seconds:.0f}s tolerated (a replay?)"
        )
    expected = timestamped_signature(token, body, int(timestamp))
    return hmac.compare_digest(f"timestamp={timestamp},signature={digest}", expected)
