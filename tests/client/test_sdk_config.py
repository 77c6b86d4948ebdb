"""Where the SDK sends requests and with which token: arguments, then Kiteline's variables,
then Buildkite's; and the errors for what is missing or unreachable."""

from __future__ import annotations

import pytest

from kiteline.client import ApiConnectionError, AsyncClient, Client, ConfigurationError
from tests.support.live_server import free_port

VARIABLES = (
    "KITELINE_URL",
    "KITELINE_TOKEN",
    "KITELINE_ORG",
    "BUILDKITE_API_TOKEN",
    "BUILDKITE_API_URL",
    "BUILDKITE_ORGANIZATION_SLUG",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


KITELINE = ("https://ci.example.com/v2", "https://ci.example.com/v1")
BUILDKITE = ("https://api.buildkite.com/v2", "https://graphql.buildkite.com/v1")


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        pytest.param(
            {"base_url": "http://127.0.0.1:8080/", "token": "kl", "org": "acme"},
            {"BUILDKITE_API_TOKEN": "bk"},
            ("http://127.0.0.1:8080/v2", "http://127.0.0.1:8080/v1", "kl", "acme"),
            id="a Kiteline root serves REST at /v2 and GraphQL at /v1",
        ),
        pytest.param(
            {},
            {
                "KITELINE_URL": "https://ci.example.com",
                "KITELINE_TOKEN": "kl",
                "KITELINE_ORG": "acme",
                "BUILDKITE_API_TOKEN": "bk",
                "BUILDKITE_ORGANIZATION_SLUG": "my-great-org",
            },
            (*KITELINE, "kl", "acme"),
            id="Kiteline's variables come before Buildkite's",
        ),
        pytest.param(
            {},
            {"BUILDKITE_API_TOKEN": "bk", "BUILDKITE_ORGANIZATION_SLUG": "my-great-org"},
            (*BUILDKITE, "bk", "my-great-org"),
            id="Buildkite's variables make a Buildkite client",
        ),
        pytest.param(
            {},
            {"BUILDKITE_API_TOKEN": "bk", "BUILDKITE_API_URL": "https://proxy.example.com/v2/"},
            ("https://proxy.example.com/v2", BUILDKITE[1], "bk", None),
            id="BUILDKITE_API_URL moves REST",
        ),
        pytest.param(
            {"rest_url": "http://a.test/v2", "graphql_url": "http://b.test/graphql"},
            {"KITELINE_URL": "https://ci.example.com", "KITELINE_TOKEN": "kl"},
            ("http://a.test/v2", "http://b.test/graphql", "kl", None),
            id="explicit URLs override either",
        ),
    ],
)
def test_where_requests_go_and_with_which_token(
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict[str, str],
    environment: dict[str, str],
    expected: tuple[str, str, str, str | None],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for client in (Client(**arguments), AsyncClient(**arguments)):
        config = client.config
        assert (config.rest_url, config.graphql_url, config.token, config.org) == expected


def test_a_kiteline_token_is_never_sent_to_buildkite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITELINE_TOKEN", "kl_token")
    with pytest.raises(ConfigurationError, match="KITELINE_TOKEN is only used with KITELINE_URL"):
        Client()


def test_a_client_without_any_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no API token"):
        Client("http://127.0.0.1:8080")


def test_a_call_needing_an_organization_without_one_says_how_to_give_it() -> None:
    client = Client("http://127.0.0.1:1", "kl_token")
    with pytest.raises(ConfigurationError, match=r"pass org=\.\.\., or set one with Client"):
        client.pipeline("web")


def test_an_unreachable_server_raises_a_connection_error_naming_it() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", "kl_token", org="acme") as client,
        pytest.raises(ApiConnectionError, match=r"could not reach 127\.0\.0\.1") as failed,
    ):
        client.organization()
    assert failed.value.url.endswith("/v2/organizations/acme")


def test_the_repr_shows_where_but_never_the_token() -> None:
    client = Client("http://127.0.0.1:8080", "kl_secret_token", org="acme")
    assert "kl_secret_token" not in repr(client) + repr(client.config)
