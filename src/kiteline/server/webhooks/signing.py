"""The headers of one webhook attempt: event, request id, and the signature of its mode.

The signatures themselves are computed by `kiteline.client.webhooks`, the same code receivers
verify with, so the two cannot drift apart.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum

from kiteline.client.webhooks import (
    SIGNATURE_HEADER,
    TOKEN_HEADER,
    sha256_signature,
    timestamped_signature,
)


class TokenMode(StrEnum):
    SHA256 = "sha256"  # the seed's `sha256=<hex>`, the default
    SIGNATURE = "signature"  # Buildkite's `timestamp=T,signature=<hex>`
    TOKEN = "token"  # Buildkite's plain `X-Buildkite-Token`


#: What buildkite.com sends; receivers that check it keep working.
USER_AGENT = "Buildkite-Request"


def request_headers(
    *,
    event: str,
    request_id: uuid.UUID,
    body: bytes,
    token: str,
    mode: TokenMode,
    now: float | None = None,
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Buildkite-Event": event,
        "X-Buildkite-Request": str(request_id),
    }
    if mode == TokenMode.SHA256:
        headers[SIGNATURE_HEADER] = sha256_signature(token, body)
    elif mode == TokenMode.SIGNATURE:
        timestamp = int(time.time() if now is None else now)
        headers[SIGNATURE_HEADER] = timestamped_signature(token, body, timestamp)
    else:
        headers[TOKEN_HEADER] = token
    return headers
