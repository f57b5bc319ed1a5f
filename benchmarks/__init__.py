"""Benchmarks: not tests. `uv run python -m benchmarks --help`."""
