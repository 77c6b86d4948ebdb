"""Redaction of secret env values in the log stream."""

from __future__ import annotations

import pytest

from kiteline.agent.redactor import Redactor, append_redactions


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


def test_values_appended_to_a_watched_file_are_redacted_from_later_writes(tmp_path) -> None:
    output: list[bytes] = []
    redactor = Redactor(output.append)
    watched = tmp_path / "redactions"
    watched.touch()
    redactor.watch(watched)

    redactor.write(b"before: hunter2\n")
    append_redactions(watched, ["hunter2", "multi\nline"])
    redactor.write(b"after: hunter2 multi\nline\n")
    redactor.flush()

    assert b"".join(output) == b"before: hunter2\nafter: [REDACTED] [REDACTED]\n"


def test_a_half_written_line_is_read_once_it_is_complete(tmp_path) -> None:
    output: list[bytes] = []
    redactor = Redactor(output.append)
    watched = tmp_path / "redactions"
    watched.write_text('"secret-')
    redactor.watch(watched)

    redactor.write(b"1 secret-one\n")
    with watched.open("a") as file:
        file.write('one"\n')
    redactor.write(b"2 secret-one\n")

    assert b"".join(output) == b"1 secret-one\n2 [REDACTED]\n"
