"""Kiteline: a self-hosted CI/CD server that speaks Buildkite's interfaces."""

__version__ = "0.1.0"
