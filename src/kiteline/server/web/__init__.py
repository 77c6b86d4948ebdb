"""The web UI: server-rendered pages at Buildkite's paths (see docs/decisions/0012-web-ui.md)."""
