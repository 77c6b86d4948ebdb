"""The API and web URLs that REST objects point at, all on this server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Urls:
    base: str

    def api(self, path: str) -> str:
        return f"{self.base}/v2/{path.lstrip('/')}"

    def web(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

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
