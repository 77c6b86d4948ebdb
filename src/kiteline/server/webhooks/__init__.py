"""Webhooks: Buildkite's notification services, delivered from the events outbox."""
