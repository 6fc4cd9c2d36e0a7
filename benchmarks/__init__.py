"""Benchmarks that print tables (``python -m benchmarks.speed``); never part of the unit tests."""
