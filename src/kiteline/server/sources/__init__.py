"""Source providers: code-host webhooks that start builds, and commit statuses sent back."""
