"""Metrics and `distill eval`."""
