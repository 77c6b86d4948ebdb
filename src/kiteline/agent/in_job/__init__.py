"""The `buildkite-agent` subcommands a job runs: one module per command group, sharing `context`."""
