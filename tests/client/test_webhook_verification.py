"""`kiteline.client.webhooks` verifies all three signature modes and refuses replays."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kiteline.client.webhooks import (
    InvalidWebhook,
    sha256_signature,
    timestamped_signature,
    verify_webhook_request,
)

BODY = b'{"event":"ping"}'
TOKEN = "s3cret"
NOW = 1_800_000_000


def test_sha256_mode_is_accepted_and_named() -> None:
    headers = {"X-Buildkite-Signature": sha256_signature(TOKEN, BODY)}
    assert verify_webhook_request(BODY, headers, TOKEN) == "sha256"


def test_sha256_mode_refuses_another_body() -> None:
    headers = {"X-Buildkite-Signature": sha256_signature(TOKEN, BODY)}
    with pytest.raises(InvalidWebhook, match="does not match"):
        verify_webhook_request(b'{"event":"build.finished"}', headers, TOKEN)


def test_timestamped_mode_within_the_tolerance_is_accepted() -> None:
    headers = {"x-buildkite-signature": timestamped_signature(TOKEN, BODY, NOW - 60)}
    assert verify_webhook_request(BODY, headers, TOKEN, now=NOW) == "signature"


def test_timestamped_mode_outside_the_tolerance_is_a_replay() -> None:
    headers = {"X-Buildkite-Signature": timestamped_signature(TOKEN, BODY, NOW - 301)}
    with pytest.raises(InvalidWebhook, match="replay"):
        verify_webhook_request(BODY, headers, TOKEN, now=NOW)
    assert verify_webhook_request(BODY, headers, TOKEN, now=NOW, tolerance_seconds=400)


def test_timestamped_mode_refuses_a_moved_timestamp() -> None:
    signed = timestamped_signature(TOKEN, BODY, NOW)
    moved = signed.replace(f"timestamp={NOW}", f"timestamp={NOW + 1}")
    with pytest.raises(InvalidWebhook, match="does not match"):
        verify_webhook_request(BODY, {"X-Buildkite-Signature": moved}, TOKEN, now=NOW)


def test_timestamped_signature_is_buildkites_hmac_of_timestamp_dot_body() -> None:
    digest = hmac.new(TOKEN.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert timestamped_signature(TOKEN, BODY, NOW) == f"timestamp={NOW},signature={digest}"


def test_malformed_timestamped_header_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="malformed"):
        verify_webhook_request(BODY, {"X-Buildkite-Signature": "timestamp=x"}, TOKEN)


def test_token_mode_compares_the_token() -> None:
    assert verify_webhook_request(BODY, {"X-Buildkite-Token": TOKEN}, TOKEN) == "token"
    with pytest.raises(InvalidWebhook):
        verify_webhook_request(BODY, {"X-Buildkite-Token": "guess"}, TOKEN)


def test_a_required_mode_refuses_the_others() -> None:
    with pytest.raises(InvalidWebhook, match="expected a signature webhook, got token"):
        verify_webhook_request(BODY, {"X-Buildkite-Token": TOKEN}, TOKEN, mode="signature")


def test_a_request_without_signature_or_token_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="neither"):
        verify_webhook_request(BODY, {}, TOKEN)
