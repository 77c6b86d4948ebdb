"""Redaction of secret env values in the log stream."""

from __future__ import annotations

import pytest

from kiteline.agent.redactor import Redactor


def redact(env: dict[str, str], *writes: bytes) -> bytes:
    output: list[bytes] = []
    redactor = Redactor(output.append)
    redactor.add_secrets_from_env(env)
    for data in writes:
        redactor.write(data)
    redactor.flush()
    return b"".join(output)


@pytest.mark.parametrize(
    "name", ["MY_SECRET", "API_TOKEN", "DB_PASSWORD", "SSH_KEY", "AWS_ACCESS_KEY", "gh_token"]
)
def test_values_of_secret_named_variables_are_replaced(name: str) -> None:
    assert redact({name: "s3cr3t-value"}, b"value is s3cr3t-value!\n") == b"value is [REDACTED]!\n"


def test_other_variables_are_left_alone() -> None:
    assert redact({"GREETING": "hello-world"}, b"hello-world\n") == b"hello-world\n"


def test_values_shorter_than_six_characters_are_not_redacted() -> None:
    assert redact({"MY_SECRET": "abcde"}, b"abcde\n") == b"abcde\n"


def test_a_secret_split_across_two_writes_is_redacted() -> None:
    assert redact({"MY_SECRET": "split-secret"}, b"a split-", b"secret b\n") == b"a [REDACTED] b\n"


def test_a_secret_split_across_many_writes_is_redacted() -> None:
    writes = [bytes([byte]) for byte in b"<split-secret>"]
    assert redact({"MY_SECRET": "split-secret"}, *writes) == b"<[REDACTED]>"


def test_a_held_back_prefix_that_is_not_a_secret_is_written_on_flush() -> None:
    assert redact({"MY_SECRET": "split-secret"}, b"ends with split-") == b"ends with split-"


def test_a_secret_containing_another_is_redacted_whole() -> None:
    env = {"SHORT_TOKEN": "abcdef", "LONG_TOKEN": "abcdef-ghijkl"}
    assert redact(env, b"abcdef-ghijkl abcdef") == b"[REDACTED] [REDACTED]"
