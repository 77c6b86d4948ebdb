"""The API and web URLs that REST objects point at, all on this server."""

from __future__ import annotations

from dataclasses import dataclass

#: Paths of the APIs on this server: their errors are JSON, never a web page.
API_PATHS = ("/v1", "/v2", "/v3", "/graphql", "/healthz", "/metrics")
#: First path segments the web UI (and the code hosts' `/deliver`) use, beside organizations' slugs.
WEB_PATHS = ("/static", "/login", "/logout", "/user", "/organizations", "/badges", "/deliver")
#: No organization may take one of these slugs: its pages (`/{slug}`) would be unreachable.
RESERVED_SLUGS = frozenset(path.strip("/") for path in API_PATHS + WEB_PATHS)


@dataclass(frozen=True)
class Urls:
    base: str

    def api(self, path: str) -> str:
        return f"{self.base}/v2/{path.lstrip('/')}"

    def web(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def badge(self, key: str) -> str:
        """A pipeline's build status badge, served without sign-in to whoever has its key."""
        return self.web(f"badges/{key}.svg")

    def organization(self, org: str) -> str:
        return self.api(f"organizations/{org}")

    def pipeline(self, org: str, pipeline: str) -> str:
        return self.api(f"organizations/{org}/pipelines/{pipeline}")

    def builds(self, org: str, pipeline: str) -> str:
        """What `build` puts before the number: a list computes it once, not per build."""
        return f"{self.pipeline(org, pipeline)}/builds/"

    def builds_web(self, org: str, pipeline: str) -> str:
        return self.web(f"{org}/{pipeline}/builds/")

    def build(self, org: str, pipeline: str, number: int) -> str:
        return f"{self.builds(org, pipeline)}{number}"

    def build_web(self, org: str, pipeline: str, number: int) -> str:
        return f"{self.builds_web(org, pipeline)}{number}"
