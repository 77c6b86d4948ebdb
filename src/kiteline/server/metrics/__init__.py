"""`/metrics`: Prometheus text format for operators (see docs/operations.md)."""
