"""Where the client sends requests and with what token: arguments, else the environment.

Kiteline serves REST under `/v2` and GraphQL at `/v1` of one server root; Buildkite serves them
on two hosts. A Kiteline URL (`base_url=` or `KITELINE_URL`) is that root; without one the
client talks to Buildkite (`BUILDKITE_API_URL`, default `https://api.buildkite.com/v2`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from kiteline.client.errors import ConfigurationError

BUILDKITE_REST_URL = "https://api.buildkite.com/v2"
BUILDKITE_GRAPHQL_URL = "https://graphql.buildkite.com/v1"
USER_AGENT = "kiteline-client/0.1 (+httpx)"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


@dataclass(frozen=True)
class ClientConfig:
    rest_url: str
    graphql_url: str
    token: str = field(repr=False)
    org: str | None = None
    #: Items asked for per page of every list (Buildkite's maximum).
    per_page: int = 100
    #: Seconds one HTTP request may take (connect, each read, write).
    timeout: float = 30.0
    #: A 429 whose reset is further away than this is raised at once instead of waited for.
    max_rate_limit_wait: float = 60.0
    #: How many times one request is retried after a 429 before `RateLimited` is raised.
    max_retries: int = 3
    user_agent: str = USER_AGENT

    @classmethod
    def resolve(
        cls,
        base_url: str | None = None,
        token: str | None = None,
        *,
        org: str | None = None,
        rest_url: str | None = None,
        graphql_url: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ClientConfig:
        """Arguments first, then `KITELINE_URL`/`KITELINE_TOKEN`/`KITELINE_ORG`, then
        `BUILDKITE_API_TOKEN`/`BUILDKITE_API_URL`/`BUILDKITE_ORGANIZATION_SLUG`."""
        env = os.environ if env is None else env
        root = base_url or env.get("KITELINE_URL")
        if root:
            root = root.rstrip("/")
            rest, graphql = f"{root}/v2", f"{root}/v1"
            token = token or env.get("KITELINE_TOKEN") or env.get("BUILDKITE_API_TOKEN")
        else:
            rest = env.get("BUILDKITE_API_URL") or BUILDKITE_REST_URL
            graphql = BUILDKITE_GRAPHQL_URL
            # KITELINE_TOKEN goes with KITELINE_URL only: never to api.buildkite.com.
            token = token or env.get("BUILDKITE_API_TOKEN")
        if not token:
            unused = not root and env.get("KITELINE_TOKEN")
            hint = " (KITELINE_TOKEN is only used with KITELINE_URL)" if unused else ""
            raise ConfigurationError(
                "no API token: pass token=..., or set KITELINE_URL and KITELINE_TOKEN, "
                f"or BUILDKITE_API_TOKEN{hint}"
            )
        return cls(
            rest_url=(rest_url or rest).rstrip("/"),
            graphql_url=(graphql_url or graphql).rstrip("/"),
            token=token,
            org=org or env.get("KITELINE_ORG") or env.get("BUILDKITE_ORGANIZATION_SLUG") or None,
            **options,
        )

    def organization(self, org: str | None) -> str:
        """`org`, else the default organization; a call that needs one cannot go without."""
        chosen = org or self.org
        if not chosen:
            raise ConfigurationError(
                "no organization: pass org=..., or set one with Client(org=...), KITELINE_ORG "
                "or BUILDKITE_ORGANIZATION_SLUG"
            )
        return chosen

    def rest(self, *segments: str | int) -> str:
        """The REST URL of a path, each segment escaped (keys and slugs may hold `/` or `?`)."""
        return "/".join([self.rest_url, *(quote(str(segment), safe="") for segment in segments)])

    def trusts(self, url: str) -> bool:
        """Whether `url` is on one of the API hosts, the only ones that are sent the token."""
        return _origin(url) in (_origin(self.rest_url), _origin(self.graphql_url))

    def on_api_origin(self, link: str) -> str:
        """An API link (next page, an artifact's `download_url`) moved onto the REST host this
        client was given: a server behind a proxy may name its public URL in them, and the
        token must not follow a link to some other host."""
        scheme, netloc = _origin(self.rest_url)
        parts = urlsplit(link)
        return urlunsplit((scheme, netloc, parts.path, parts.query, ""))
