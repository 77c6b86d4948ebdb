"""Code from the seed reference (../shared/reference/seed.md) that tests use as a receiver's
own, kept verbatim: Kiteline has to satisfy it as written."""

# ruff: noqa: I001
# fmt: off
import hmac
import hashlib

def verify_webhook(payload, signature, token):
    expected = hmac.new(
        token.encode(),
        payload,
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)
# fmt: on
