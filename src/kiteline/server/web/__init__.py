"""The web UI: server-rendered pages at Buildkite's paths (see docs/decisions/0013-web-ui.md)."""
